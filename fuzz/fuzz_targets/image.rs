#![no_main]
//! Fuzz target: see fuzz/targets.rs (`image_file`).

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::image_file(data));
