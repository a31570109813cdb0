//! When a webhook delivery is tried again: exponential backoff up to a ceiling, a bounded
//! number of attempts, and which answers are final.

use std::time::Duration;

/// Pause after the first failed attempt.
pub const WEBHOOK_RETRY_FIRST_DELAY_MS: u64 = 1_000;
/// Each further pause is this many times the previous one.
pub const WEBHOOK_RETRY_FACTOR: u64 = 2;
/// Longest pause between two attempts.
pub const WEBHOOK_RETRY_MAX_DELAY_MS: u64 = 60_000;
/// Attempts per event and webhook (the first included) before it counts as failed.
pub const WEBHOOK_ATTEMPTS_MAX: u32 = 8;
/// Bound on one attempt: connect, TLS handshake, request and answer.
pub const WEBHOOK_REQUEST_TIMEOUT_MS: u64 = 5_000;

/// The backoff and bounds a sender uses (the constants above, or shorter ones in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_delay_ms: u64,
    pub factor: u64,
    pub max_delay_ms: u64,
    pub attempts_max: u32,
    pub request_timeout_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_delay_ms: WEBHOOK_RETRY_FIRST_DELAY_MS,
            factor: WEBHOOK_RETRY_FACTOR,
            max_delay_ms: WEBHOOK_RETRY_MAX_DELAY_MS,
            attempts_max: WEBHOOK_ATTEMPTS_MAX,
            request_timeout_ms: WEBHOOK_REQUEST_TIMEOUT_MS,
        }
    }
}

/// What an attempt's outcome means for the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth another attempt (no answer, 5xx, 408, 429, anything unexpected).
    Retry,
    /// The receiver refuses it for good (a 4xx other than 408 and 429).
    Refused,
}

/// The verdict on an answer's status.
pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 => Verdict::Retry,
        400..=499 => Verdict::Refused,
        _ => Verdict::Retry,
    }
}

impl RetryPolicy {
    /// The pause after failed attempt number `attempt` (1 = the first).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let mut delay_ms = self.first_delay_ms;
        for _ in 1..attempt {
            delay_ms = delay_ms.saturating_mul(self.factor);
            if delay_ms >= self.max_delay_ms {
                break;
            }
        }
        Duration::from_millis(delay_ms.min(self.max_delay_ms))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let policy = RetryPolicy::default();
        let delays: Vec<u64> = (1..=8).map(|a| policy.delay_after(a).as_millis() as u64).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]);
        assert_eq!(policy.delay_after(u32::MAX), Duration::from_millis(WEBHOOK_RETRY_MAX_DELAY_MS));
    }

    #[test]
    fn only_a_final_4xx_is_not_retried() {
        assert_eq!([200, 204, 299].map(verdict), [Verdict::Delivered; 3]);
        assert_eq!([400, 401, 404, 410].map(verdict), [Verdict::Refused; 4]);
        assert_eq!([408, 429, 500, 503, 302, 100].map(verdict), [Verdict::Retry; 6]);
    }
}
