//! The layering of docs/architecture.md, checked on the source: every `crate::` path a module
//! names must be in its own layer or one below (runtime ← IR ← kernels ← executor ← nn/models
//! ← trainer and tasks ← commands), modules of one layer must not import each other in a
//! cycle, and no source file is over 700 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of a top-level module of the crate (lower = more basic).
fn layer(module: &str) -> Option<usize> {
    Some(match module {
        "error" | "rng" | "names" | "values" | "gpu" => 0,
        "graph" => 1,
        "kernels" => 2,
        "executor" => 3,
        "nn" | "models" => 4,
        // The trainer shares the tasks' layer: it writes checkpoints and IMP reports.
        "trainer" | "data" | "checkpoint" | "run_dir" | "plot" | "train" | "text" | "imp"
        | "eval" | "export" | "experiment" | "bench" | "fit" => 5,
        "commands" => 6,
        _ => return None,
    })
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_their_layer_or_below_and_files_stay_short() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    sources(&src, &mut files);
    let mut problems = vec![];
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let text = std::fs::read_to_string(file).unwrap();
        let lines = text.lines().count();
        if lines > 700 {
            problems.push(format!("{} has {lines} lines (at most 700)", rel.display()));
        }
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs");
        let Some(own) = layer(top) else {
            continue; // lib.rs, main.rs
        };
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(theirs) = layer(&name) {
                if name != top {
                    edges
                        .entry(top.to_string())
                        .or_default()
                        .insert(name.clone());
                }
                if theirs > own {
                    problems.push(format!(
                        "{} (layer {own}) uses crate::{name} (layer {theirs})",
                        rel.display()
                    ));
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        problems.push(format!(
            "modules import each other in a cycle: {}",
            cycle.join(" → ")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A cycle of the module graph, if there is one (depth-first search).
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut vec![], &mut done))
}
