#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lineup_fuzz::island_journal(data);
});
