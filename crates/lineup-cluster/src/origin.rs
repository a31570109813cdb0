//! Which site a command comes from. A `CommandId::origin` is either a site's own id (site
//! control's proposals, whose serials persist across restarts) or `site << 32 | incarnation`
//! (the node's own proposals: API writes, the leader's Ticks). A peer may forward only
//! commands of its own site: the peer link knows the sender from its certificate.

/// The origin of commands proposed by `site` during run number `incarnation`. A new run
/// never reuses an old run's (origin, serial), so the core's dedup cannot mistake a new
/// command for an old one.
pub fn origin_for(site: u64, incarnation: u32) -> u64 {
    (site << 32) | u64::from(incarnation)
}

/// The site an origin belongs to (the inverse of both forms above).
pub fn site_of_origin(origin: u64) -> u64 {
    match origin >> 32 {
        0 => origin,
        site => site,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_name_their_site() {
        assert_eq!(site_of_origin(3), 3);
        assert_eq!(site_of_origin(origin_for(3, 0)), 3);
        assert_eq!(site_of_origin(origin_for(3, u32::MAX)), 3);
        assert_eq!(site_of_origin(u64::from(u32::MAX)), u64::from(u32::MAX));
    }
}
