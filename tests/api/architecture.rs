//! The layers of docs/ARCHITECTURE.md, enforced by reading the sources: every module imports
//! only from the layers below it (and from itself), so no capability reaches up into the HTTP
//! API or the wiring, and the store knows nothing of the capabilities it stores.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bottom first. Modules in one entry may import each other; a module may import any module of
/// an earlier entry. The model modules (plain data types) sit below every capability so that
/// any of them may hold a `Proxy` or a `User`.
const LAYERS: &[&[&str]] = &[
    &["error", "clock"],
    &["config"],
    &["store"],
    &["http"],
    &["registry::model", "fleet::model", "changes"],
    &["queue"],
    &["mail"],
    &["registry"],
    &["distribution"],
    &["fleet"],
    &["blocking"],
    &["gateways"],
    &["billing"],
    &["mirror"],
    &["backup"],
    &["admin"],
    &["metrics"],
    &["api"],
    &["app"],
    &["lib", "main"],
];

/// Modules that name a sub-module in the layers (`registry::model` is not `registry`).
const SPLIT: &[&str] = &["registry", "fleet"];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The layer name of a path below `crate::`, e.g. `fleet::model::User` -> `fleet::model`.
fn module_of(path: &str) -> String {
    let mut parts = path.split("::").map(str::trim);
    let top = parts.next().unwrap_or_default().to_string();
    if SPLIT.contains(&top.as_str()) {
        if let Some(second) = parts.next() {
            let candidate = format!("{top}::{second}");
            if rank(&candidate).is_some() {
                return candidate;
            }
        }
    }
    top
}

/// The module a source file belongs to, from its path below `src/`.
fn module_of_file(relative: &Path) -> String {
    let path = relative.with_extension("");
    let path = path.to_string_lossy().replace('/', "::");
    let path = path.strip_suffix("::mod").unwrap_or(&path);
    module_of(path)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (line comments only: the code base has no block comments).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // `"https://..."` inside a string is cut too: that only hides text, never adds.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::...` path the code names, with grouped imports (`crate::{a, b::c}`) expanded.
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let preceded_by_word = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if preceded_by_word {
            continue; // `proxyfleet_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            paths.extend(group[..end].split(',').map(|p| p.trim().to_string()));
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            paths.push(rest[..end].to_string());
        }
    }
    paths.retain(|p| !p.is_empty() && p != "self");
    paths
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "read the sources from {}", src.display());
    let mut violations = BTreeSet::new();
    let mut unplaced = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = module_of_file(relative);
        let Some(own_rank) = rank(&module) else {
            unplaced.insert(module);
            continue;
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for path in crate_paths(&code) {
            let target = module_of(&path);
            let Some(target_rank) = rank(&target) else {
                unplaced.insert(target);
                continue;
            };
            if target_rank > own_rank && !target.starts_with(&format!("{module}::")) {
                violations.insert(format!(
                    "{} ({module}) imports crate::{path} ({target})",
                    relative.display()
                ));
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules missing from LAYERS (place them in docs/ARCHITECTURE.md too): {unplaced:?}"
    );
    assert!(
        violations.is_empty(),
        "imports that reach up a layer:\n{}",
        violations.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_and_nested_imports() {
    let code = code_of(
        "use crate::{api::AppState, fleet::model::User};\n\
         // use crate::app::Application;\n\
         let x = crate::registry::model::Proxy::default(); other_crate::app::x();",
    );
    assert_eq!(
        crate_paths(&code),
        [
            "api::AppState",
            "fleet::model::User",
            "registry::model::Proxy::default"
        ]
    );
    assert_eq!(module_of("registry::model::Proxy"), "registry::model");
    assert_eq!(module_of("registry::Registry"), "registry");
    assert_eq!(module_of_file(Path::new("fleet/rebalance/mod.rs")), "fleet");
    assert_eq!(module_of_file(Path::new("fleet/model.rs")), "fleet::model");
    assert_eq!(module_of_file(Path::new("lib.rs")), "lib");
}

/// The fuzz targets list proxyfleet's dev-dependencies as their own (fuzz/Cargo.toml says why):
/// a dev-dependency missing there makes the fuzz build compile the shared crates a second time.
#[test]
fn the_fuzz_targets_depend_on_what_the_tests_depend_on() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let fuzz = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap();
    let section = manifest
        .split("[dev-dependencies]")
        .nth(1)
        .expect("a [dev-dependencies] section");
    let section = section.split("\n[").next().unwrap_or_default();
    let lines: Vec<&str> = section
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert!(lines.len() >= 5, "{lines:?}");
    for line in lines {
        assert!(
            fuzz.lines().any(|l| l.trim() == line),
            "fuzz/Cargo.toml lacks the dev-dependency `{line}`"
        );
    }
}
