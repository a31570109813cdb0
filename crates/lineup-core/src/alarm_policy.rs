//! When a raised queue alarm clears: at a lower level than the one it was raised at, and not
//! before it has been raised for a while. Without that, a queue hovering at its level raises
//! and clears every few seconds. Part of the routing config (`[alarm_policy]`); the raise
//! levels stay in each queue's config (`alarm_depth`, `alarm_longest_wait_ms`).

use crate::ids::QueueId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default clear level as a percentage of the raise level (depth and longest wait).
pub const ALARM_CLEAR_DEFAULT_PERCENT: u8 = 80;
/// Highest clear percentage: the clear level is always below the raise level.
pub const ALARM_CLEAR_MAX_PERCENT: u8 = 99;
/// Default time a raised alarm stays raised before it may clear.
pub const ALARM_HOLD_DEFAULT_MS: u64 = 30_000;
/// Longest configurable hold (one hour).
pub const ALARM_HOLD_MAX_MS: u64 = 3_600_000;
/// Most per-queue entries in the policy.
pub const ALARM_POLICY_QUEUES_MAX_COUNT: usize = 10_000;

/// Clear levels and hold for queue alarms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AlarmPolicy {
    /// A depth alarm clears at or below `raise − max(1, ceil(raise × (100 − p) / 100))`.
    #[cfg_attr(feature = "openapi", schema(maximum = 99))]
    pub depth_clear_percent: u8,
    /// A longest-wait alarm clears at or below `raise × p / 100` (rounded down).
    #[cfg_attr(feature = "openapi", schema(maximum = 99))]
    pub longest_wait_clear_percent: u8,
    /// A raised alarm stays raised at least this long (core time, the commands' `at_ms`).
    #[cfg_attr(feature = "openapi", schema(maximum = 3_600_000))]
    pub hold_ms: u64,
    /// Explicit clear levels for some queues, instead of the percentages.
    pub queues: BTreeMap<QueueId, QueueAlarmClear>,
}

/// One queue's explicit clear levels; absent ones follow the percentages. A level at or
/// above the queue's raise level is used as `raise − 1`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct QueueAlarmClear {
    pub depth_clear: Option<u32>,
    pub longest_wait_clear_ms: Option<u64>,
}

impl Default for AlarmPolicy {
    fn default() -> Self {
        Self {
            depth_clear_percent: ALARM_CLEAR_DEFAULT_PERCENT,
            longest_wait_clear_percent: ALARM_CLEAR_DEFAULT_PERCENT,
            hold_ms: ALARM_HOLD_DEFAULT_MS,
            queues: BTreeMap::new(),
        }
    }
}

impl AlarmPolicy {
    pub fn validate(&self) -> Result<(), crate::CoreError> {
        let invalid = |field: &str, reason: String| Err(crate::CoreError::InvalidField { field: field.into(), reason });
        for (field, percent) in [
            ("alarm_policy.depth_clear_percent", self.depth_clear_percent),
            ("alarm_policy.longest_wait_clear_percent", self.longest_wait_clear_percent),
        ] {
            if percent > ALARM_CLEAR_MAX_PERCENT {
                return invalid(
                    field,
                    format!(
                        "{percent} is above {ALARM_CLEAR_MAX_PERCENT} (the clear level must be below the raise level)"
                    ),
                );
            }
        }
        if self.hold_ms > ALARM_HOLD_MAX_MS {
            return invalid("alarm_policy.hold_ms", format!("{} is above {ALARM_HOLD_MAX_MS}", self.hold_ms));
        }
        if self.queues.len() > ALARM_POLICY_QUEUES_MAX_COUNT {
            return invalid("alarm_policy.queues", format!("more than {ALARM_POLICY_QUEUES_MAX_COUNT} queues"));
        }
        Ok(())
    }

    /// The depth at or below which a depth alarm raised at `raise` clears.
    pub fn depth_clear(&self, queue: &QueueId, raise: u32) -> u64 {
        let raise = u64::from(raise);
        let below = raise.saturating_sub(1);
        if let Some(level) = self.queues.get(queue).and_then(|q| q.depth_clear) {
            return u64::from(level).min(below);
        }
        let drop = (raise * u64::from(100 - self.depth_clear_percent.min(ALARM_CLEAR_MAX_PERCENT))).div_ceil(100);
        raise.saturating_sub(drop.max(1))
    }

    /// The longest wait at or below which a longest-wait alarm raised at `raise_ms` clears.
    pub fn longest_wait_clear_ms(&self, queue: &QueueId, raise_ms: u64) -> u64 {
        let below = raise_ms.saturating_sub(1);
        if let Some(level) = self.queues.get(queue).and_then(|q| q.longest_wait_clear_ms) {
            return level.min(below);
        }
        let percent = u128::from(self.longest_wait_clear_percent.min(ALARM_CLEAR_MAX_PERCENT));
        let level = u128::from(raise_ms) * percent / 100;
        u64::try_from(level).unwrap_or(u64::MAX).min(below)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_clear_levels() {
        let p = AlarmPolicy::default();
        let q = QueueId::new("sales");
        // raise − max(1, ceil(20 %)).
        assert_eq!([1, 2, 5, 8, 10, 100].map(|r| p.depth_clear(&q, r)), [0, 1, 4, 6, 8, 80]);
        assert_eq!(p.longest_wait_clear_ms(&q, 60_000), 48_000);
        assert_eq!(p.longest_wait_clear_ms(&q, 1), 0);
    }

    #[test]
    fn explicit_levels_stay_below_the_raise_level() {
        let q = QueueId::new("sales");
        let mut p = AlarmPolicy::default();
        p.queues.insert(q.clone(), QueueAlarmClear { depth_clear: Some(9), longest_wait_clear_ms: Some(10_000) });
        assert_eq!(p.depth_clear(&q, 8), 7);
        assert_eq!(p.depth_clear(&q, 12), 9);
        assert_eq!(p.longest_wait_clear_ms(&q, 60_000), 10_000);
        assert_eq!(p.depth_clear(&QueueId::new("other"), 8), 6);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = AlarmPolicy { depth_clear_percent: 100, ..Default::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("alarm_policy.depth_clear_percent"));
        let bad = AlarmPolicy { hold_ms: ALARM_HOLD_MAX_MS + 1, ..Default::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("alarm_policy.hold_ms"));
        assert!(AlarmPolicy::default().validate().is_ok());
    }
}
