//! `lineup bench reports`: a day of calls written into a history database (a fresh SQLite
//! file, and the PostgreSQL database `--postgres` names, which must be empty), then each
//! report over the whole day timed.

use crate::BenchError;
use lineup_core::{
    CallId, CallRecord, Effect, HungUpBy, OperatorId, OperatorStatus, OperatorView, Outcome, QueueId, SiteId,
};
use lineup_store::{HistoryStore, ReportInterval, ReportQuery};
use serde::Serialize;
use std::time::Instant;

/// 2026-12-01 00:00 UTC, the benchmark's day.
const BENCH_DAY_MS: u64 = 1_796_083_200_000;
const DAY_MS: u64 = 86_400_000;
/// Queues the calls are spread over.
const BENCH_QUEUES: u64 = 4;
/// Operators taking the answered calls in turn (200 × 96 quarter hours fits a report).
const BENCH_OPERATORS: u64 = 200;
/// Log entries written per history transaction.
const BENCH_BATCH_ENTRIES: usize = 1_000;
/// Runs per report; the median is printed.
const BENCH_RUNS: usize = 5;
const WRAP_UP_MS: u64 = 10_000;

/// What `lineup bench reports` measures over.
#[derive(Debug, Clone)]
pub struct ReportBenchOptions {
    /// Calls in the day.
    pub calls: u64,
    /// An empty PostgreSQL database to fill as well (left filled).
    pub postgres: Option<String>,
    /// The SQLite file to fill (kept); default a temporary one, removed after.
    pub sqlite: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
pub struct Timings {
    write_s: f64,
    queues_15m_ms: f64,
    queues_day_ms: f64,
    operators_15m_ms: f64,
    operators_day_ms: f64,
}

#[derive(Serialize)]
pub struct ReportBenchReport {
    calls: u64,
    operators: u64,
    runs_per_report: usize,
    sqlite: Timings,
    postgres: Option<Timings>,
}

fn view(operator: &str, at_ms: u64, status: OperatorStatus) -> Effect {
    let site = Some(SiteId(1));
    let operator = OperatorId::new(operator);
    Effect::OperatorChanged(OperatorView {
        operator,
        status,
        site,
        channel: None,
        since_ms: at_ms,
        rest_until_ms: None,
        queues: vec![],
    })
}

/// Call `i`'s log entry: every 10th is abandoned, the rest answered by operator
/// `i % BENCH_OPERATORS` (busy, wrap-up, available), whose previous call is over by then.
fn call_entry(i: u64, spacing_ms: u64) -> Vec<Effect> {
    let entered_at_ms = BENCH_DAY_MS + i * spacing_ms;
    let wait_ms = (i * 7_919 % 60) * 1_000;
    let answered = i % 10 != 0;
    let talk_ms = (60 + i * 104_729 % 180) * 1_000;
    let operator = format!("op{}", i % BENCH_OPERATORS);
    let connected = entered_at_ms + wait_ms;
    let ended_at_ms = if answered { connected + talk_ms } else { connected };
    let mut effects = Vec::new();
    if answered {
        let call = CallId::new(format!("c{i}"));
        effects.push(view(&operator, connected, OperatorStatus::Busy { call, fence: i }));
        effects.push(view(&operator, ended_at_ms, OperatorStatus::WrapUp { until_ms: ended_at_ms + WRAP_UP_MS }));
        effects.push(view(&operator, ended_at_ms + WRAP_UP_MS, OperatorStatus::Available));
    }
    effects.push(Effect::CallEnded(CallRecord {
        call: CallId::new(format!("c{i}")),
        queue: QueueId::new(format!("q{}", i % BENCH_QUEUES)),
        gate: None,
        priority: 5,
        entry_site: SiteId(1),
        caller_number: "5550100".into(),
        caller_name: String::new(),
        outcome: if answered { Outcome::Completed { by: HungUpBy::Caller } } else { Outcome::Abandoned },
        entered_at_ms,
        ended_at_ms,
        wait_ms,
        handle_ms: answered.then_some(talk_ms),
        operator: answered.then(|| OperatorId::new(&operator)),
        operator_site: answered.then_some(SiteId(1)),
        callback_number: None,
        callback_attempts: 0,
    }));
    effects
}

async fn write_day(store: &HistoryStore, calls: u64) -> Result<(), BenchError> {
    let logins: Vec<Effect> =
        (0..BENCH_OPERATORS).map(|o| view(&format!("op{o}"), BENCH_DAY_MS, OperatorStatus::Available)).collect();
    let spacing_ms = DAY_MS / calls.max(1);
    let entries = std::iter::once(logins).chain((0..calls).map(|i| call_entry(i, spacing_ms)));
    let mut batch = Vec::with_capacity(BENCH_BATCH_ENTRIES);
    for (index, effects) in entries.enumerate() {
        batch.push((index as u64 + 1, effects));
        if batch.len() == BENCH_BATCH_ENTRIES {
            store.write_batch(&batch).await?;
            batch.clear();
        }
    }
    store.write_batch(&batch).await?;
    Ok(())
}

/// Median milliseconds of one report over the day.
async fn time_report(store: &HistoryStore, interval: ReportInterval, operators: bool) -> Result<f64, BenchError> {
    let end = BENCH_DAY_MS + DAY_MS;
    let query = ReportQuery {
        from_ms: BENCH_DAY_MS,
        to_ms: end,
        interval,
        queue: None,
        gate: None,
        service_level_ms: None,
        now_ms: end,
    };
    let mut runs = Vec::with_capacity(BENCH_RUNS);
    for _ in 0..BENCH_RUNS {
        let started = Instant::now();
        if operators {
            store.operator_report(&query).await?;
        } else {
            store.queue_report(&query).await?;
        }
        runs.push(started.elapsed().as_secs_f64() * 1_000.0);
    }
    runs.sort_by(f64::total_cmp);
    Ok((runs[BENCH_RUNS / 2] * 10.0).round() / 10.0)
}

async fn measure(url: &str, calls: u64) -> Result<Timings, BenchError> {
    let store = HistoryStore::open(url).await?;
    if !store.calls().await?.is_empty() {
        return Err(BenchError::Unfit("the history database must be empty"));
    }
    let started = Instant::now();
    write_day(&store, calls).await?;
    let write_s = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    let timings = Timings {
        write_s,
        queues_15m_ms: time_report(&store, ReportInterval::Minutes15, false).await?,
        queues_day_ms: time_report(&store, ReportInterval::Day, false).await?,
        operators_15m_ms: time_report(&store, ReportInterval::Minutes15, true).await?,
        operators_day_ms: time_report(&store, ReportInterval::Day, true).await?,
    };
    store.close().await;
    Ok(timings)
}

/// Runs the benchmark over SQLite (a temporary file unless `sqlite` names one) and, when
/// given, PostgreSQL.
pub async fn run(options: &ReportBenchOptions) -> Result<ReportBenchReport, BenchError> {
    let dir = std::env::temp_dir().join(format!("lineup-bench-reports-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sqlite_path = options.sqlite.clone().unwrap_or_else(|| dir.join("history.sqlite"));
    let sqlite_url = format!("sqlite://{}", sqlite_path.display());
    let measured = async {
        let sqlite = measure(&sqlite_url, options.calls).await?;
        let postgres = match &options.postgres {
            Some(url) => Some(measure(url, options.calls).await?),
            None => None,
        };
        Ok::<_, BenchError>((sqlite, postgres))
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let (sqlite, postgres) = measured?;
    Ok(ReportBenchReport {
        calls: options.calls,
        operators: BENCH_OPERATORS,
        runs_per_report: BENCH_RUNS,
        sqlite,
        postgres,
    })
}
