//! The catalogue of error codes is the only place a code is explained: every code the
//! source writes is in it, and the reference's table is exactly it.

use std::path::{Path, PathBuf};

use teardown_core::codes::{CODES, find, markdown_table};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.to_string_lossy().ends_with("_tests.rs") {
            out.push(path);
        }
    }
}

/// The first string literal of every call that names an error code.
fn codes_written(text: &str) -> Vec<String> {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut found = Vec::new();
    for call in ["Failure::new(", "ServiceError::new(", "ServiceError::transient(", "with_code("] {
        for (at, _) in text.match_indices(call) {
            let rest = &text[at + call.len()..];
            // The code is the first argument, or the second after an outcome.
            let head: String = rest.chars().take(120).collect();
            let Some(open) = head.find('"') else { continue };
            if head[..open].contains('(') || head[..open].matches(',').count() > 1 {
                continue; // a computed code (a variable, a format!): not a literal
            }
            if let Some(len) = head[open + 1..].find('"') {
                found.push(head[open + 1..open + 1 + len].to_owned());
            }
        }
    }
    found
}

#[test]
fn every_code_the_source_writes_is_in_the_catalogue() {
    let mut files = Vec::new();
    for dir in ["src", "crates/teardown-core/src", "crates/teardown-aws/src"] {
        rust_files(&repo().join(dir), &mut files);
    }
    let mut seen = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for code in codes_written(&text) {
            seen += 1;
            assert!(find(&code).is_some(), "{}: code {code:?} is not in teardown_core::codes::CODES", file.display());
        }
    }
    assert!(seen > 20, "the scan found {seen} codes: it no longer reads the calls");
}

#[test]
fn the_references_table_is_the_catalogue() {
    let reference = std::fs::read_to_string(repo().join("docs/reference.md")).expect("docs/reference.md");
    let table = markdown_table();
    assert!(
        reference.contains(&table),
        "docs/reference.md must hold the catalogue's table exactly; it reads:\n\n{table}"
    );
    assert_eq!(table.lines().count(), CODES.len() + 2);
}
