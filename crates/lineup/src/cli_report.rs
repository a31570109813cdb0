//! `lineup report queues|operators`: interval reports from any node's API
//! (`GET /v1/reports/...`), printed as a table, or as the node's CSV with `--csv`.

use crate::api_client::{ApiTarget, CLI_REQUEST_TIMEOUT_MS};
use crate::api_http::HttpClient;
use crate::utc_time::{format_utc, parse_utc};
use anyhow::Context;
use hyper::Method;
use serde_json::Value;

/// The period when `--to` is not given: one day from `--from`.
pub const REPORT_PERIOD_DEFAULT_MS: u64 = 86_400_000;

#[derive(clap::Subcommand)]
pub enum ReportCommand {
    /// Per queue and interval: offered, answered, abandoned, service level, ASA, AHT...
    Queues(ReportArgs),
    /// Per operator and interval: calls taken, talk, wrap-up, breaks, logins, occupancy.
    Operators(ReportArgs),
}

#[derive(clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    target: ApiTarget,
    /// Start (UTC, included): 2026-12-01, 2026-12-01T08:00 or Unix ms.
    #[arg(long, value_parser = parse_utc)]
    from: u64,
    /// End (UTC, excluded); default one day after --from.
    #[arg(long, value_parser = parse_utc)]
    to: Option<u64>,
    /// 15m, 30m, 60m or day.
    #[arg(long, default_value = "60m")]
    interval: String,
    /// Only this queue (operators: its members and whoever took its calls).
    #[arg(long)]
    queue: Option<String>,
    /// Only calls through this gate.
    #[arg(long)]
    gate: Option<String>,
    /// Service-level threshold for every queue (default: each queue's configured one).
    #[arg(long)]
    service_level_ms: Option<u64>,
    /// Print the node's CSV instead of a table.
    #[arg(long)]
    csv: bool,
}

impl ReportArgs {
    fn path(&self, route: &str) -> String {
        let to = self.to.unwrap_or(self.from.saturating_add(REPORT_PERIOD_DEFAULT_MS));
        let mut path = format!("/v1/reports/{route}?from={}&to={to}&interval={}", self.from, self.interval);
        let filters = [("queue", &self.queue), ("gate", &self.gate)];
        for (name, value) in filters.iter().filter_map(|(n, v)| v.as_ref().map(|v| (n, v))) {
            path.push_str(&format!("&{name}={value}"));
        }
        if let Some(ms) = self.service_level_ms {
            path.push_str(&format!("&service_level_ms={ms}"));
        }
        if self.csv {
            path.push_str("&format=csv");
        }
        path
    }
}

pub fn report(command: &ReportCommand) -> anyhow::Result<()> {
    let (route, args) = match command {
        ReportCommand::Queues(args) => ("queues", args),
        ReportCommand::Operators(args) => ("operators", args),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let body = runtime.block_on(fetch(args, &args.path(route)))?;
    if args.csv {
        print!("{}", String::from_utf8_lossy(&body));
        return Ok(());
    }
    let rows: Vec<Value> = serde_json::from_slice(&body).context("the node's answer is not a list of rows")?;
    print!("{}", if route == "queues" { queue_table(&rows) } else { operator_table(&rows) });
    Ok(())
}

async fn fetch(args: &ReportArgs, path: &str) -> anyhow::Result<Vec<u8>> {
    let target = &args.target;
    let http = HttpClient::new(&target.api, target.ca_file.as_deref(), CLI_REQUEST_TIMEOUT_MS)?;
    let answer =
        http.request(Method::GET, path, &target.token, None).await.with_context(|| format!("reach {}", target.api))?;
    if !(200..300).contains(&answer.status) {
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let reason = body["error"].as_str().map_or_else(|| body.to_string(), str::to_string);
        anyhow::bail!("the report was refused ({}): {reason}", answer.status);
    }
    Ok(answer.body.to_vec())
}

fn count(row: &Value, key: &str) -> u64 {
    row[key].as_u64().unwrap_or(0)
}

/// A figure with one decimal, or `-` when there is none.
fn figure(row: &Value, key: &str) -> String {
    row[key].as_f64().map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

fn percent(row: &Value, key: &str) -> String {
    row[key].as_f64().map_or_else(|| "-".to_string(), |v| format!("{:.1}%", v * 100.0))
}

fn start(row: &Value) -> String {
    format_utc(count(row, "interval_start"))
}

pub fn queue_table(rows: &[Value]) -> String {
    let mut out = String::from(
        "QUEUE            START (UTC)       OFFERED ANSWERED ABANDONED (<SL/>SL) TIMEOUT FULL CLOSED SL      ASA_S   AHT_S   LONGEST_S CALLBACKS (P/M/A)\n",
    );
    for r in rows {
        let abandoned = format!(
            "{} ({}/{})",
            count(r, "abandoned"),
            count(r, "abandoned_before_sl"),
            count(r, "abandoned_after_sl")
        );
        let callbacks = format!(
            "{}/{}/{}",
            count(r, "callbacks_promised"),
            count(r, "callbacks_made"),
            count(r, "callbacks_answered")
        );
        out.push_str(&format!(
            "{:<16} {:<17} {:>7} {:>8} {:<19} {:>7} {:>4} {:>6} {:<7} {:>7} {:>7} {:>9} {}\n",
            r["queue"].as_str().unwrap_or("?"),
            start(r),
            count(r, "offered"),
            count(r, "answered"),
            abandoned,
            count(r, "timed_out"),
            count(r, "full"),
            count(r, "closed"),
            percent(r, "service_level"),
            figure(r, "asa_s"),
            figure(r, "aht_s"),
            figure(r, "longest_wait_s"),
            callbacks,
        ));
    }
    out
}

pub fn operator_table(rows: &[Value]) -> String {
    let mut out = String::from(
        "OPERATOR         START (UTC)       CALLS TALK_S  WRAP_S  BREAK_S LOGGED_IN_S LOGINS OCCUPANCY BREAKS\n",
    );
    for r in rows {
        let breaks = r["breaks"].as_object().map_or_else(String::new, |m| {
            m.iter().map(|(reason, s)| format!("{reason} {}", s.as_f64().unwrap_or(0.0))).collect::<Vec<_>>().join(", ")
        });
        out.push_str(&format!(
            "{:<16} {:<17} {:>5} {:>7} {:>7} {:>8} {:>11} {:>6} {:<9} {}\n",
            r["operator"].as_str().unwrap_or("?"),
            start(r),
            count(r, "calls_taken"),
            figure(r, "talk_s"),
            figure(r, "wrap_up_s"),
            figure(r, "break_s"),
            figure(r, "logged_in_s"),
            count(r, "logins"),
            percent(r, "occupancy"),
            breaks,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_show_every_row_with_readable_times_and_figures() {
        let queue = json!({ "queue": "sales", "interval_start": 1_796_112_000_000u64, "offered": 7, "answered": 3,
            "abandoned": 2, "abandoned_before_sl": 1, "abandoned_after_sl": 1, "timed_out": 1, "full": 1, "closed": 0,
            "service_level": 0.3333, "asa_s": 23.3, "aht_s": null, "longest_wait_s": 300.0,
            "callbacks_promised": 2, "callbacks_made": 4, "callbacks_answered": 1 });
        let table = queue_table(&[queue]);
        let line = table.lines().nth(1).unwrap();
        assert!(line.starts_with("sales            2026-12-01 08:00"), "{line}");
        for part in ["2 (1/1)", "33.3%", "23.3", "-", "300.0", "2/4/1"] {
            assert!(line.contains(part), "{part} in {line}");
        }
        let operator = json!({ "operator": "alice", "interval_start": 1_796_112_000_000u64, "calls_taken": 1,
            "talk_s": 120.0, "wrap_up_s": 30.0, "break_s": 1200.0, "logged_in_s": 3600.0, "logins": 0,
            "occupancy": 0.0625, "breaks": { "lunch": 1200.0 } });
        let line = operator_table(&[operator]).lines().nth(1).unwrap().to_string();
        assert!(line.contains("6.2%") && line.ends_with("lunch 1200"), "{line}");
    }

    #[test]
    fn the_request_names_the_period_and_every_filter() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            what: ReportCommand,
        }
        let cli = Cli::try_parse_from([
            "report",
            "queues",
            "--token",
            "t",
            "--from",
            "2026-12-01",
            "--interval",
            "15m",
            "--queue",
            "sales",
            "--service-level-ms",
            "30000",
            "--csv",
        ])
        .unwrap();
        let ReportCommand::Queues(args) = &cli.what else { panic!("queues") };
        assert_eq!(
            args.path("queues"),
            "/v1/reports/queues?from=1796083200000&to=1796169600000&interval=15m&queue=sales&service_level_ms=30000&format=csv"
        );
    }
}
