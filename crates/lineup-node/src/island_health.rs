//! This node's island state as its health report shows it (`/readyz`, `/metrics`, the
//! cluster panel): an island, or merging one back, since when and in which epoch, and
//! whether it serves its site from its fork.

use lineup_api::{IslandHealth, IslandPhaseView};
use lineup_cluster::island_watch::IslandWatch;
use lineup_core::IslandEpoch;
use std::time::Instant;

/// The island state to report; None while the node is part of the majority (also once it is
/// heard again with nothing forked: it has nothing to merge).
pub fn island_health(
    watch: IslandWatch,
    epoch: Option<IslandEpoch>,
    serving_fork: bool,
    now: Instant,
    now_unix_ms: u64,
) -> Option<IslandHealth> {
    let (phase, since) = match watch {
        IslandWatch::Island { since } => (IslandPhaseView::Island, Some(since)),
        IslandWatch::Healed { since, .. } if epoch.is_some() => (IslandPhaseView::Merging, Some(since)),
        // A restart that found an epoch to merge.
        IslandWatch::None if epoch.is_some() => (IslandPhaseView::Merging, None),
        IslandWatch::Healed { .. } | IslandWatch::None => return None,
    };
    let since_ms = since.map(|since| {
        let ago_ms = u64::try_from(now.saturating_duration_since(since.into_std()).as_millis()).unwrap_or(u64::MAX);
        now_unix_ms.saturating_sub(ago_ms)
    });
    Some(IslandHealth { phase, since_ms, epoch: epoch.map(|e| e.seq), serving_fork })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineup_core::SiteId;
    use std::time::Duration;

    #[test]
    fn islands_and_merges_are_reported_with_their_start_and_the_majority_is_not() {
        let now = Instant::now();
        let since = tokio::time::Instant::from_std(now - Duration::from_millis(90_000));
        let unix = 1_800_000_000_000;
        let epoch = IslandEpoch { site: SiteId(3), seq: 2, fork_index: 40 };
        let island = island_health(IslandWatch::Island { since }, Some(epoch), true, now, unix).unwrap();
        assert_eq!(
            island,
            IslandHealth {
                phase: IslandPhaseView::Island,
                since_ms: Some(unix - 90_000),
                epoch: Some(2),
                serving_fork: true
            }
        );
        let detected = island_health(IslandWatch::Island { since }, None, false, now, unix).unwrap();
        assert_eq!((detected.epoch, detected.serving_fork), (None, false));
        let healed = IslandWatch::Healed { since, healed_at: since };
        assert_eq!(island_health(healed, Some(epoch), false, now, unix).unwrap().phase, IslandPhaseView::Merging);
        assert_eq!(island_health(healed, None, false, now, unix), None, "nothing forked, nothing to merge");
        let restarted = island_health(IslandWatch::None, Some(epoch), false, now, unix).unwrap();
        assert_eq!((restarted.phase, restarted.since_ms), (IslandPhaseView::Merging, None));
        assert_eq!(island_health(IslandWatch::None, None, false, now, unix), None);
    }
}
