//! The hook the redb-opening targets install under libFuzzer: redb's own panics (which the
//! code under test contains) get past it; any other panic still reaches the hook before it,
//! which under libFuzzer aborts the run as a finding. Each test binary is its own process
//! under nextest, so the process-wide hook touches no other test.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

fn regression(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions").join(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn redb_panics_get_past_the_hook_and_other_panics_do_not() {
    let reached_before = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reached_before);
    std::panic::set_hook(Box::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    lineup_fuzz::let_redb_panics_unwind();
    // Every panic, counted before the hook under test sees it: the inputs must panic in redb.
    // Their places are kept so that a failure says which panics were raised.
    let raised = Arc::new(Mutex::new(Vec::new()));
    let raised_record = Arc::clone(&raised);
    let under_test = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        raised_record.lock().unwrap_or_else(PoisonError::into_inner).push(info.to_string());
        under_test(info);
    }));

    // Both inputs make redb panic while it opens the file; the stores contain it.
    lineup_fuzz::island_journal(&regression("island_journal", "redb-allocator-state-unreachable"));
    lineup_fuzz::outbox_recovery(&regression("outbox_recovery", "redb-allocator-state-out-of-range"));
    let raised = raised.lock().unwrap_or_else(PoisonError::into_inner).clone();
    assert_eq!(raised.len(), 2, "the regression inputs no longer make redb panic (or more panicked): {raised:#?}");
    assert_eq!(reached_before.load(Ordering::SeqCst), 0, "a contained redb panic reached libFuzzer's hook");

    let outcome = std::panic::catch_unwind(|| panic!("a finding"));
    assert!(outcome.is_err());
    assert_eq!(reached_before.load(Ordering::SeqCst), 1, "a panic outside redb did not reach libFuzzer's hook");
}
