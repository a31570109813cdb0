//! Missed-caller record keys as a box's AstDB lists them (`DB_KEYS(lineup-missed)`): the
//! deploy dialplan writes each from a caller's arrival and the caller id the caller's side
//! sent. Split as the driver splits the answer, then parsed and booked by a site controller:
//! each key is proposed or dropped with a warning, nothing panics, the core's invariants hold
//! after every command (the rig checks them), and the same keys read again book nothing new.

use crate::rigs::SiteRig;
use lineup_site::{Input, MISSED_RECORDS_PER_RECONCILE_MAX};

pub fn missed_records(data: &[u8]) {
    let answer = String::from_utf8_lossy(data);
    let keys: Vec<String> =
        lineup_site::split_db_keys(&answer).into_iter().take(MISSED_RECORDS_PER_RECONCILE_MAX).collect();
    let mut rig = SiteRig::new();
    rig.feed(Input::MissedRecords { keys: keys.clone() });
    let booked = rig.calls_ended();
    // A second reconcile reads the same keys (their deletes may not have reached the box).
    rig.feed(Input::MissedRecords { keys });
    assert_eq!(rig.calls_ended(), booked, "a missed caller read twice was booked twice");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The target reaches the booking: two well-formed keys book two callers, a bad one
    /// nothing.
    #[test]
    fn well_formed_keys_are_booked_and_bad_ones_are_not() {
        let keys = lineup_site::split_db_keys(
            "sales:web:1795325224:1795325230:abandoned:+15551234:1795325224.1,\
             support::1795325224:1795325254:fallback::box-a-1795325224.2,nosuch::1:2:abandoned::1.4",
        );
        let mut rig = SiteRig::new();
        rig.feed(Input::MissedRecords { keys });
        assert_eq!(rig.calls_ended(), 2);
    }
}
