//! Replays the committed fuzz seeds and crash regressions (fuzz/seeds/TARGET/*) through the
//! bodies of the fuzz targets (fuzz/targets.rs): no loader may panic on them. `cargo fuzz run
//! TARGET fuzz/seeds/TARGET` explores from the same inputs (docs/architecture.md, "Bad input").

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::Path;

#[test]
fn fuzz_seeds_and_regressions_replay_without_panics() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (name, target) in targets::TARGETS {
        let dir = seeds.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no seeds for {name}");
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            // Each prefix too: truncated files are the commonest bad input.
            for cut in [data.len(), data.len() / 2, 7, 0] {
                let result = std::panic::catch_unwind(|| target(&data[..cut.min(data.len())]));
                assert!(
                    result.is_ok(),
                    "{name} panicked on {} cut to {cut}",
                    input.display()
                );
            }
        }
    }
}
