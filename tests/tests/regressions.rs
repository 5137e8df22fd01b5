//! Replays fuzz inputs through the harnesses the fuzz targets call (`uwsgi_tests::harness`):
//! every crash input committed under `tests/regressions/<target>/`, forever, and the seed
//! corpus `fuzz/seeds/<target>/`, so every property of every harness runs in each
//! ordinary `cargo test`. See docs/fuzzing.md.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use uwsgi_tests::harness;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    paths.sort();
    paths
}

/// Runs every file of `root/<target>/` through the harness of `<target>`; returns how
/// many ran. Fails listing every input whose harness panicked.
fn replay(root: &Path) -> usize {
    let mut count = 0;
    let mut failures = Vec::new();
    for dir in sorted_entries(root) {
        if !dir.is_dir() {
            continue;
        }
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 folder name");
        let check = harness::target(name)
            .unwrap_or_else(|| panic!("{}: no harness named {name}", dir.display()));
        for file in sorted_entries(&dir) {
            let bytes = std::fs::read(&file).expect("readable input");
            count += 1;
            if catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    eprintln!("replayed {count} input(s) from {}", root.display());
    assert!(
        failures.is_empty(),
        "{} input(s) fail their harness:\n{}",
        failures.len(),
        failures.join("\n")
    );
    count
}

#[test]
fn fuzz_regressions_replay() {
    // Every crash the fuzzers found; the folder may hold none yet for some targets.
    replay(&repo().join("tests/regressions"));
}

#[test]
fn seed_corpus_replays() {
    let n = replay(&repo().join("fuzz/seeds"));
    assert!(n > 0, "no seed corpus under fuzz/seeds");
}

#[test]
fn every_harness_has_a_fuzz_target_and_seeds() {
    for (name, _) in harness::TARGETS {
        let target = repo().join(format!("fuzz/fuzz_targets/{name}.rs"));
        let source = std::fs::read_to_string(&target)
            .unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        assert!(
            source.contains("uwsgi_tests::harness::"),
            "{} does not call a harness",
            target.display()
        );
        let seeds = sorted_entries(&repo().join(format!("fuzz/seeds/{name}")));
        assert!(!seeds.is_empty(), "no seeds for target {name}");
    }
}
