#![no_main]
//! Fuzz target: see fuzz/targets.rs (`cifar_batch`).

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::cifar_batch(data));
