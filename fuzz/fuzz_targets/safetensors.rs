#![no_main]
//! Fuzz target: see fuzz/targets.rs (`safetensors_file`).

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::safetensors_file(data));
