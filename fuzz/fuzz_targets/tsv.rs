#![no_main]
//! Fuzz target: see fuzz/targets.rs (`tsv_file`).

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::tsv_file(data));
