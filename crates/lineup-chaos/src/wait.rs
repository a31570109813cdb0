//! Bounded waiting: every wait for progress polls a condition until a deadline.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Polls `check` every `interval_ms` until it returns Some or `limit_ms` have passed.
pub async fn poll<T, F, Fut>(limit_ms: u64, interval_ms: u64, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_millis(limit_ms);
    let rounds = limit_ms / interval_ms.max(1) + 1;
    for _ in 0..rounds {
        if let Some(found) = check().await {
            return Some(found);
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
    }
    None
}

/// Milliseconds since `start`.
pub fn elapsed_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}
