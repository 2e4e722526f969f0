//! The source layout rules of issue 14, checked on the real tree:
//! - no non-test Rust source file is over [`MAX_LINES`] lines (test files, and top-level
//!   `#[cfg(test)]` items, do not count);
//! - no crate has an import cycle between its files.
//!
//! The import graph is file -> file. Edges come from `use` declarations (nested `{}` groups,
//! `self`, `super`, `crate` and child-module-relative paths) and from `crate::`, `self::`,
//! `super::` and imported-name paths in the code. A path resolves to the file that *defines* the
//! item: re-exports (`pub use` in a facade, or any `use` the path goes through) are followed,
//! so naming a sibling through its parent's facade is an edge to the sibling, and an edge to
//! the parent only when the parent defines the item. A `mod x;` declaration is not an edge.
//! Comments and string literals are ignored; the parser is a tokenizer, not a Rust parser, so
//! a name it cannot place resolves to the module's own file (it errs towards reporting).
//!
//! Pure std: it reads the repository from `CARGO_MANIFEST_DIR/..`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

// The checker's parts, beside this file (a test target's modules live next to its root).
#[path = "layout/graph.rs"]
mod graph;
#[path = "layout/tokens.rs"]
mod tokens;

use graph::{crate_roots, cycles, edges, load_crate, one_loop};
use tokens::counted_lines;

/// The limit for one non-test source file.
const MAX_LINES: usize = 700;

/// Source folders checked; `bench/*/src` is expanded.
const SOURCE_DIRS: &[&str] = &["domain/src", "src", "client/src", "test/src", "bench/*/src"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn source_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in SOURCE_DIRS {
        match d.strip_suffix("/*/src") {
            Some(parent) => {
                let mut subs: Vec<PathBuf> = fs::read_dir(root.join(parent))
                    .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                    .unwrap_or_default();
                subs.sort();
                out.extend(
                    subs.into_iter()
                        .map(|s| s.join("src"))
                        .filter(|s| s.is_dir()),
                );
            }
            None => out.push(root.join(d)),
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `tests.rs`, `*_tests.rs`, or anything under a `tests/` or `benches/` folder (relative to
/// the crate's source folder).
fn is_test_file(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || rel
            .parent()
            .into_iter()
            .flat_map(Path::components)
            .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "benches")
}

fn show(root: &Path, p: &Path) -> String {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let p = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    p.strip_prefix(&root).unwrap_or(&p).display().to_string()
}

/// Every import cycle of the crates under `dirs`, each printed as its files.
fn find_cycles(root: &Path, dirs: &[PathBuf]) -> Vec<String> {
    let mut report = Vec::new();
    for dir in dirs {
        for crate_root in crate_roots(dir) {
            let mods = load_crate(&crate_root);
            let is_test = |m: usize| {
                mods[m]
                    .path
                    .strip_prefix(dir)
                    .map(is_test_file)
                    .unwrap_or(false)
            };
            let edges: BTreeMap<(usize, usize), String> = edges(&mods)
                .into_iter()
                .filter(|((a, b), _)| !is_test(*a) && !is_test(*b))
                .collect();
            for group in cycles(mods.len(), &edges) {
                let lp = one_loop(&group, &edges);
                let mut text = format!(
                    "cycle in {}: {}",
                    show(root, &crate_root),
                    lp.iter()
                        .map(|&f| show(root, &mods[f].path))
                        .collect::<Vec<_>>()
                        .join(" -> ")
                );
                for w in lp.windows(2) {
                    text.push_str(&format!(
                        "\n    {} -> {} (`{}`)",
                        show(root, &mods[w[0]].path),
                        show(root, &mods[w[1]].path),
                        edges[&(w[0], w[1])]
                    ));
                }
                if group.len() + 1 > lp.len() {
                    text.push_str(&format!(
                        "\n    all files of this cycle: {}",
                        group
                            .iter()
                            .map(|&f| show(root, &mods[f].path))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                report.push(text);
            }
        }
    }
    report
}

/// Every non-test file over [`MAX_LINES`] counted lines under `dirs`.
fn find_oversize(root: &Path, dirs: &[PathBuf]) -> Vec<String> {
    let mut report = Vec::new();
    for dir in dirs {
        let mut files = Vec::new();
        rust_files(dir, &mut files);
        for f in files {
            if f.strip_prefix(dir).is_ok_and(is_test_file) {
                continue;
            }
            let src = fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let n = counted_lines(&src);
            if n > MAX_LINES {
                report.push(format!("{}: {n} lines (limit {MAX_LINES})", show(root, &f)));
            }
        }
    }
    report
}

// ---------------------------------------------------------------------------------------------
// The real tree

#[test]
fn no_source_file_is_over_the_line_limit() {
    let root = repo_root();
    let found = find_oversize(&root, &source_dirs(&root));
    for f in &found {
        println!("{f}");
    }
    assert!(
        found.is_empty(),
        "{} files over {MAX_LINES} lines:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn no_crate_has_an_import_cycle() {
    let root = repo_root();
    let found = find_cycles(&root, &source_dirs(&root));
    for c in &found {
        println!("{c}");
    }
    assert!(
        found.is_empty(),
        "{} import cycles:\n{}",
        found.len(),
        found.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Self-tests on a synthetic crate

/// A throwaway source folder with the given files, removed on drop.
struct TempCrate(PathBuf);

impl TempCrate {
    fn new(name: &str, files: &[(&str, &str)]) -> TempCrate {
        let dir = std::env::temp_dir().join(format!("layout-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (path, text) in files {
            let p = dir.join(path);
            fs::create_dir_all(p.parent().expect("a parent")).expect("temp dir");
            fs::write(&p, text).expect("temp file");
        }
        TempCrate(dir)
    }

    fn cycles(&self) -> Vec<String> {
        find_cycles(&self.0, std::slice::from_ref(&self.0))
    }

    fn edges(&self) -> BTreeSet<(String, String)> {
        let mods = load_crate(&self.0.join("lib.rs"));
        let name = |m: usize| show(&self.0, &mods[m].path);
        edges(&mods)
            .keys()
            .map(|&(a, b)| (name(a), name(b)))
            .collect()
    }
}

impl Drop for TempCrate {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn edge(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

/// A facade `f` over two children, used from outside and between the children.
const FACADE: &[(&str, &str)] = &[
    ("lib.rs", "pub mod a;\npub mod f;\n"),
    (
        "f/mod.rs",
        "//! Facade.\nmod x;\nmod y;\npub use x::X;\npub use self::y::{Y, Z as Zed};\n",
    ),
    (
        "f/x.rs",
        "use super::Y;\n/// Not an edge: `crate::a::A`.\npub struct X(pub Y);\n",
    ),
    (
        "f/y.rs",
        "pub struct Y;\npub struct Z;\nconst S: &str = \"crate::a::A\";\n",
    ),
    (
        "a.rs",
        "use crate::f::{self, X};\npub fn a(_: X) -> f::Zed { f::Zed }\n",
    ),
];

#[test]
fn a_plain_tree_has_no_cycle() {
    let c = TempCrate::new("plain", FACADE);
    assert_eq!(c.cycles(), Vec::<String>::new());
}

#[test]
fn a_child_naming_a_sibling_through_the_facade_depends_on_the_sibling() {
    let c = TempCrate::new("sibling", FACADE);
    let edges = c.edges();
    assert!(edges.contains(&edge("f/x.rs", "f/y.rs")), "{edges:?}");
    assert!(!edges.contains(&edge("f/x.rs", "f/mod.rs")), "{edges:?}");
    // The facade's re-exports are imports of the defining files; `a` reaches both through it.
    assert!(edges.contains(&edge("f/mod.rs", "f/x.rs")), "{edges:?}");
    assert!(edges.contains(&edge("f/mod.rs", "f/y.rs")), "{edges:?}");
    assert!(edges.contains(&edge("a.rs", "f/x.rs")), "{edges:?}");
    assert!(edges.contains(&edge("a.rs", "f/y.rs")), "{edges:?}");
    assert!(!edges.contains(&edge("a.rs", "f/mod.rs")), "{edges:?}");
    // Comments and strings are not code.
    assert!(!edges.iter().any(|(_, to)| to == "a.rs"), "{edges:?}");
}

#[test]
fn a_cycle_through_a_facade_is_found() {
    let mut files = FACADE.to_vec();
    // y names a's item; a reaches y through the facade.
    files[3] = (
        "f/y.rs",
        "pub struct Y;\npub struct Z;\nfn g() { let _ = crate::a::a; }\n",
    );
    let c = TempCrate::new("through", &files);
    let found = c.cycles();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("a.rs") && found[0].contains("f/y.rs"),
        "{found:?}"
    );
    assert!(!found[0].contains("f/mod.rs"), "{found:?}");
}

#[test]
fn a_child_using_what_its_parent_defines_makes_a_cycle_with_the_facade() {
    let mut files = FACADE.to_vec();
    files[1] = (
        "f/mod.rs",
        "mod x;\nmod y;\npub use x::X;\npub use y::{Y, Z as Zed};\npub struct W;\n",
    );
    files[2] = (
        "f/x.rs",
        "use super::{Y, W};\npub struct X(pub Y, pub W);\n",
    );
    let c = TempCrate::new("parent", &files);
    let found = c.cycles();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("f/mod.rs -> f/x.rs -> f/mod.rs"),
        "{found:?}"
    );
}

#[test]
fn nested_groups_self_super_and_test_code_are_read() {
    let files = [
        ("lib.rs", "mod p;\nmod q;\n"),
        ("p/mod.rs", "pub mod r;\npub fn top() {}\n"),
        ("p/r.rs", "pub fn r() { super::super::q::deep::f(); }\n#[cfg(test)]\nmod tests { use crate::q::*; }\n"),
        ("q/mod.rs", "pub mod deep;\n#[cfg(test)]\nmod tests;\nuse crate::{p::{self, r::r as rr}};\nfn g() { p::top(); rr(); }\n"),
        ("q/deep.rs", "pub fn f() {}\n"),
        ("q/tests.rs", "use crate::p::r::r;\nfn t() { crate::p::top(); }\n"),
    ];
    let c = TempCrate::new("nested", &files);
    let edges = c.edges();
    let want: BTreeSet<_> = [
        edge("p/r.rs", "q/deep.rs"),
        edge("q/mod.rs", "p/r.rs"),
        edge("q/mod.rs", "p/mod.rs"),
    ]
    .into();
    assert_eq!(edges, want);
}

#[test]
fn test_code_does_not_count_towards_the_limit() {
    let code = "fn f() {}\n".repeat(10);
    let tests = format!(
        "#[cfg(test)]\nmod tests {{\n{}}}\n",
        "    // x\n".repeat(50)
    );
    assert_eq!(counted_lines(&format!("{code}{tests}")), 10);
    assert_eq!(
        counted_lines(&format!("{code}#[cfg(test)]\nmod tests;\n{code}")),
        20
    );
    assert!(is_test_file(Path::new("stand_in/tests.rs")));
    assert!(is_test_file(Path::new("stand_in/webhooks_tests.rs")));
    assert!(is_test_file(Path::new("tests/x.rs")));
    assert!(!is_test_file(Path::new("stand_in/mod.rs")));
}
