#![no_main]
//! Fuzz target: see fuzz/targets.rs (`bert_files`).

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::bert_files(data));
