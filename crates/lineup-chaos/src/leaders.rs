//! Whether the federation had a leader, sampled through the run: the intervals with none are
//! when no caller could join the global order at any site (each node retries its callers'
//! entries, which commit in the order the retries reach the next leader), so the order check
//! judges nobody then and counts such a caller as joining when a leader is known again.

use crate::api::NodeApi;
use crate::standin::StandIn;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How often the harness asks every node who leads.
pub const LEADER_SAMPLE_INTERVAL_MS: u64 = 200;
/// Bound on the intervals kept (a run of hours with a fault a minute has far fewer).
const LEADERLESS_INTERVALS_MAX_COUNT: usize = 10_000;

/// One interval without a known leader, on the stand-in's clock: from the last sample that
/// found one to the first that found one again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Leaderless {
    pub from_ms: u64,
    pub until_ms: u64,
}

pub struct LeaderWatch {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<Leaderless>>,
}

impl LeaderWatch {
    /// Starts sampling `apis` (site, API base URL), every node of the run the spare included.
    pub async fn start(api: NodeApi, apis: Vec<(u64, String)>, standin: Arc<StandIn>) -> LeaderWatch {
        let standin_base_ms = standin.state().await.map(|state| state.now_ms).unwrap_or_default();
        let clock = StandinClock { base: Instant::now(), standin_base_ms };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(sample(api, apis, clock, stopped));
        LeaderWatch { stop, task }
    }

    /// Stops sampling; the leaderless intervals seen (one still open ends now).
    pub async fn stop(self) -> Vec<Leaderless> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// The stand-in's clock (ms since it started), read once and carried on the harness's own.
#[derive(Clone, Copy)]
struct StandinClock {
    base: Instant,
    standin_base_ms: u64,
}

impl StandinClock {
    fn now_ms(&self) -> u64 {
        self.standin_base_ms + self.base.elapsed().as_millis() as u64
    }
}

async fn sample(
    api: NodeApi,
    apis: Vec<(u64, String)>,
    clock: StandinClock,
    mut stopped: watch::Receiver<bool>,
) -> Vec<Leaderless> {
    let mut intervals = Vec::new();
    let mut last_led_ms = clock.now_ms();
    let mut open = false;
    while !*stopped.borrow() {
        let led = confirmed_leader(&api, &apis).await.is_some();
        let now_ms = clock.now_ms();
        match (led, open) {
            (true, true) if intervals.len() < LEADERLESS_INTERVALS_MAX_COUNT => {
                intervals.push(Leaderless { from_ms: last_led_ms, until_ms: now_ms });
                open = false;
            }
            (false, _) => open = true,
            _ => open = false,
        }
        if led {
            last_led_ms = now_ms;
        }
        let pause = tokio::time::sleep(Duration::from_millis(LEADER_SAMPLE_INTERVAL_MS));
        tokio::select! {
            _ = pause => {}
            _ = stopped.changed() => {}
        }
    }
    if open {
        intervals.push(Leaderless { from_ms: last_led_ms, until_ms: clock.now_ms() });
    }
    intervals
}

/// A leader some node names and that names itself (a killed or frozen leader, still named
/// by the others until they time out, does not answer).
async fn confirmed_leader(api: &NodeApi, apis: &[(u64, String)]) -> Option<u64> {
    let mut asked = JoinSet::new();
    for (site, url) in apis {
        let (api, site, url) = (api.clone(), *site, url.clone());
        asked.spawn(async move { (site, api.leader(&url).await) });
    }
    let answers: Vec<(u64, Option<u64>)> = asked.join_all().await;
    answers.iter().filter_map(|(_, named)| *named).find(|named| answers.contains(&(*named, Some(*named))))
}
