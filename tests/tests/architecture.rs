//! The shape of the workspace, checked: within each crate the top-level modules depend on each
//! other without loops (a module that needs one that needs it back is one concept in two
//! homes), and the crates depend only downward.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module → the top-level modules its code (not its comments, not its tests) names
/// through `crate::`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().to_string_lossy().to_string();
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" || top == "bin" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                if !name.is_empty() && name != top {
                    g.entry(top.clone()).or_default().insert(name);
                }
            }
        }
    }
    g
}

/// A cycle through `start`, if there is one.
fn cycle_from(
    g: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    let last = path.last().cloned().unwrap_or_else(|| start.to_string());
    for next in g.get(&last).into_iter().flatten() {
        if next == start {
            let mut c = path.clone();
            c.insert(0, start.to_string());
            return Some(c);
        }
        if !path.contains(next) && next.as_str() != start {
            path.push(next.clone());
            if let Some(c) = cycle_from(g, start, path) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_crate_has_an_import_loop_between_its_modules() {
    let mut loops = Vec::new();
    for krate in [
        "cgroups",
        "sdnotify",
        "lxcfs",
        "dbus",
        "cgmanager",
        "runtime",
    ] {
        let g = module_graph(&workspace().join(krate).join("src"));
        for m in g.keys() {
            if let Some(c) = cycle_from(&g, m, &mut Vec::new()) {
                loops.push(format!("{krate}: {}", c.join(" -> ")));
                break;
            }
        }
    }
    assert!(loops.is_empty(), "import loops: {loops:#?}");
}

#[test]
fn crates_depend_only_downward() {
    // Lowest first: a crate may use only crates before it.
    let order = [
        "cgroups",
        "sdnotify",
        "dbus",
        "lxcfs",
        "cgmanager",
        "runtime",
    ];
    let names = [
        ("cgroups", "cgroups"),
        ("sdnotify", "sdnotify"),
        ("dbus", "cgmanager-dbus"),
        ("lxcfs", "lxcfs"),
        ("cgmanager", "cgmanager"),
        ("runtime", "lxr"),
    ];
    let package = |dir: &str| names.iter().find(|(d, _)| *d == dir).unwrap().1;
    for (i, krate) in order.iter().enumerate() {
        let manifest = std::fs::read_to_string(workspace().join(krate).join("Cargo.toml")).unwrap();
        let deps = manifest
            .split("[dependencies]")
            .nth(1)
            .unwrap_or_default()
            .split("\n[")
            .next()
            .unwrap_or_default();
        for (j, other) in order.iter().enumerate() {
            let uses = deps
                .lines()
                .any(|l| l.split(['.', ' ', '=']).next() == Some(package(other)));
            assert!(
                !uses || j < i,
                "{krate} depends on {other}, which is not below it"
            );
        }
    }
}
