#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // redb panics opening some damaged files; the code under test contains them.
    lineup_fuzz::let_redb_panics_unwind();
    lineup_fuzz::island_journal(data);
});
