//! redb 4.5 panics (index out of range, `unreachable!`) rather than answering an error when it
//! opens some damaged files. `Outbox::open` and `IslandJournal::open` catch that panic and
//! answer a clear error, which the stable replay of these targets checks. libFuzzer's panic
//! hook aborts the process before the unwinding reaches that catch, so under libFuzzer the
//! targets that open damaged redb files stopped at redb's first such panic and explored
//! nothing past it. Those targets install this hook first: a panic raised in redb's own source
//! unwinds to the catch; every other panic (and a redb panic nothing catches, which reaches
//! libFuzzer's own catch) still ends the run as a finding.

use std::panic::{self, PanicHookInfo};
use std::sync::Once;

/// How a path to redb's source looks in a panic's location (the registry's
/// `redb-<version>/src/...`, or a vendored `redb/src/...`).
const REDB_SOURCE_MARKERS: [&str; 2] = ["/redb-", "/redb/"];

fn raised_in_redb(info: &PanicHookInfo<'_>) -> bool {
    info.location().is_some_and(|at| REDB_SOURCE_MARKERS.iter().any(|m| at.file().contains(m)))
}

/// Let panics raised inside redb unwind (to the containment in the code under test) instead of
/// aborting in the hook installed before this one. Idempotent.
pub fn let_redb_panics_unwind() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !raised_in_redb(info) {
                previous(info);
            }
        }));
    });
}
