//! The module tree of a crate (from its `mod x;` declarations), the items and imports of each
//! file, the file -> file import graph, and its cycles. See the test's module doc for the rules.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use super::tokens::{tokenize, use_paths, without_tests, Token};

/// One file of a crate.
#[derive(Debug, Default)]
pub(crate) struct Module {
    pub(crate) path: PathBuf,
    /// From the crate root, e.g. `["resources", "model"]`.
    pub(crate) mod_path: Vec<String>,
    /// Tokens of the non-test code.
    pub(crate) tokens: Vec<Token>,
    /// Child modules declared with `mod x;` (outside `#[cfg(test)]`).
    pub(crate) children: BTreeMap<String, usize>,
    /// Top-level items defined here.
    pub(crate) items: BTreeSet<String>,
    /// Top-level `use` bindings: name -> path as written.
    pub(crate) imports: BTreeMap<String, Vec<String>>,
    /// Top-level glob imports, as written.
    pub(crate) globs: Vec<Vec<String>>,
}

const ITEM_KEYWORDS: &[&str] = &[
    "fn", "struct", "enum", "const", "static", "type", "trait", "union", "mod",
];

/// Loads the module tree from a crate root file (`lib.rs`, `main.rs`, `bin/x.rs`).
pub(crate) fn load_crate(root_file: &Path) -> Vec<Module> {
    let mut mods = Vec::new();
    load(root_file, Vec::new(), true, &mut mods);
    mods
}

fn load(file: &Path, mod_path: Vec<String>, mod_rs: bool, mods: &mut Vec<Module>) -> usize {
    let src = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let (tokens, _) = without_tests(tokenize(&src));
    let id = mods.len();
    mods.push(Module {
        path: file.to_path_buf(),
        mod_path: mod_path.clone(),
        ..Module::default()
    });
    let (mut items, mut imports, mut globs, mut declared) =
        (BTreeSet::new(), BTreeMap::new(), Vec::new(), Vec::new());
    let mut depth = 0i32;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        match t.text.as_str() {
            "{" => depth += 1,
            "}" => depth -= 1,
            "use" if depth == 0 => {
                let (paths, next) = use_paths(&tokens, i + 1);
                for (p, name) in paths {
                    match name {
                        Some(n) => {
                            imports.insert(n, p);
                        }
                        None => globs.push(p),
                    }
                }
                i = next;
                continue;
            }
            "macro_rules" if depth == 0 => {
                if let Some(n) = tokens.get(i + 2) {
                    items.insert(n.text.clone());
                }
            }
            kw if depth == 0 && ITEM_KEYWORDS.contains(&kw) => {
                let prev = i.checked_sub(1).map(|p| tokens[p].text.as_str());
                let next = tokens.get(i + 1);
                // `const fn f`, `impl Trait for X { type A = ..; }` (depth 1, skipped), `&mut`.
                if let Some(n) = next.filter(|n| n.is_ident() && !n.is("fn")) {
                    if prev != Some("::") {
                        items.insert(n.text.clone());
                        if kw == "mod" && tokens.get(i + 2).is_some_and(|x| x.is(";")) {
                            declared.push(n.text.clone());
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    let dir = if mod_rs {
        file.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        file.with_extension("")
    };
    let mut children = BTreeMap::new();
    for name in declared {
        let (flat, nested) = (
            dir.join(format!("{name}.rs")),
            dir.join(&name).join("mod.rs"),
        );
        let (child, child_mod_rs) = if flat.is_file() {
            (flat, false)
        } else if nested.is_file() {
            (nested, true)
        } else {
            continue;
        };
        let mut p = mod_path.clone();
        p.push(name.clone());
        children.insert(name, load(&child, p, child_mod_rs, mods));
    }
    let m = &mut mods[id];
    (m.tokens, m.items, m.imports, m.globs, m.children) = (tokens, items, imports, globs, children);
    id
}

/// A path as written in module `m`, made absolute from the crate root; `None` when it leaves
/// the crate (`std::`, `serde::`, another crate of the workspace).
fn absolute(mods: &[Module], m: usize, written: &[String]) -> Option<Vec<String>> {
    let here = &mods[m].mod_path;
    let first = written.first()?;
    match first.as_str() {
        "crate" | "$crate" => Some(written[1..].to_vec()),
        "self" => Some([here.as_slice(), &written[1..]].concat()),
        "super" => {
            let ups = written.iter().take_while(|s| *s == "super").count();
            let base = here.get(..here.len().checked_sub(ups)?)?;
            Some([base, &written[ups..]].concat())
        }
        _ if mods[m].children.contains_key(first) || mods[m].items.contains(first) => {
            Some([here.as_slice(), written].concat())
        }
        // A name an earlier `use` brought in (`use crate::a; use a::b::C;`).
        _ => match mods[m].imports.get(first) {
            Some(target) if target.first() != Some(first) => {
                let abs = absolute(mods, m, target)?;
                Some([abs.as_slice(), &written[1..]].concat())
            }
            _ => None,
        },
    }
}

/// The file that defines what the absolute `path` names, following imports and globs.
/// `strict`: `None` for a name the module does not have (used to try globs).
fn resolve(mods: &[Module], path: &[String], strict: bool, hops: usize) -> Option<usize> {
    if hops > 32 {
        return None;
    }
    let mut m = 0;
    for (i, seg) in path.iter().enumerate() {
        if let Some(&c) = mods[m].children.get(seg) {
            m = c;
            continue;
        }
        if mods[m].items.contains(seg) {
            return Some(m);
        }
        if let Some(target) = mods[m].imports.get(seg) {
            // An import that leaves the crate: what it names is not one of our files.
            let abs = absolute(mods, m, target)?;
            let full = [abs.as_slice(), &path[i + 1..]].concat();
            return resolve(mods, &full, strict, hops + 1);
        }
        for g in &mods[m].globs {
            if let Some(abs) = absolute(mods, m, g) {
                let full = [abs.as_slice(), &path[i..]].concat();
                if let Some(f) = resolve(mods, &full, true, hops + 1) {
                    return Some(f);
                }
            }
        }
        return (!strict).then_some(m);
    }
    Some(m)
}

/// Edges of one crate: (from, to) -> a path that makes it.
pub(crate) fn edges(mods: &[Module]) -> BTreeMap<(usize, usize), String> {
    let mut out = BTreeMap::new();
    for (m, module) in mods.iter().enumerate() {
        let t = &module.tokens;
        // Every `use` of the file, at any depth, binds names; fn-local ones count file-wide.
        let mut local: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut add = |to: Option<usize>, why: &[String]| {
            if let Some(to) = to.filter(|&to| to != m) {
                out.entry((m, to)).or_insert_with(|| why.join("::"));
            }
        };
        let mut i = 0;
        while i < t.len() {
            if t[i].is("use") {
                let (paths, next) = use_paths(t, i + 1);
                for (p, name) in paths {
                    let Some(abs) = absolute(mods, m, &p) else {
                        continue;
                    };
                    let target = resolve(mods, &abs, false, 0);
                    // Importing a module alone is not a dependency on its file: using it is.
                    let names_module =
                        target.is_some_and(|f| mods[f].mod_path == abs) && name.is_some();
                    if !names_module {
                        add(target, &p);
                    }
                    if let Some(n) = name {
                        local.insert(n, abs);
                    }
                }
                i = next;
                continue;
            }
            i += 1;
        }
        let mut i = 0;
        while i < t.len() {
            if t[i].is("use") {
                i = use_paths(t, i + 1).1;
                continue;
            }
            let starts_path = t[i].is_ident()
                && t.get(i + 1).is_some_and(|x| x.is("::"))
                && !(i > 0 && (t[i - 1].is("::") || t[i - 1].is(".")));
            if !starts_path {
                i += 1;
                continue;
            }
            let mut written = vec![t[i].text.clone()];
            let mut k = i + 1;
            while t.get(k).is_some_and(|x| x.is("::")) && t.get(k + 1).is_some_and(Token::is_ident)
            {
                written.push(t[k + 1].text.clone());
                k += 2;
            }
            let abs = match local.get(&written[0]) {
                Some(target) => Some([target.as_slice(), &written[1..]].concat()),
                None => absolute(mods, m, &written),
            };
            if let Some(abs) = abs {
                add(resolve(mods, &abs, false, 0), &written);
            }
            i = k;
        }
    }
    out
}

/// Strongly connected groups of more than one file (Tarjan).
pub(crate) fn cycles(n: usize, edges: &BTreeMap<(usize, usize), String>) -> Vec<Vec<usize>> {
    struct State {
        adj: Vec<Vec<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on: Vec<bool>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on[v] = true;
        for w in s.adj[v].clone() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on[w] => s.low[v] = s.low[v].min(iw),
                _ => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on[w] = false;
                group.push(w);
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.out.push(group);
            }
        }
    }
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in edges.keys() {
        adj[a].push(b);
    }
    let mut s = State {
        adj,
        index: vec![None; n],
        low: vec![0; n],
        stack: Vec::new(),
        on: vec![false; n],
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// One shortest loop through `group[0]` inside the group.
pub(crate) fn one_loop(group: &[usize], edges: &BTreeMap<(usize, usize), String>) -> Vec<usize> {
    let start = group[0];
    let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &(a, b) in edges.keys() {
            if a != v || !group.contains(&b) {
                continue;
            }
            if b == start {
                let mut path = vec![v];
                while let Some(&p) = prev.get(path.last().unwrap_or(&start)) {
                    path.push(p);
                }
                path.reverse();
                path.push(start);
                return path;
            }
            if b != start && !prev.contains_key(&b) {
                prev.insert(b, v);
                queue.push_back(b);
            }
        }
    }
    group.to_vec()
}

/// Crate roots under a source folder: `lib.rs`, `main.rs`, `bin/*.rs`.
pub(crate) fn crate_roots(src: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .filter(|p| p.is_file())
        .collect();
    let mut bins = Vec::new();
    if let Ok(entries) = fs::read_dir(src.join("bin")) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "rs") {
                bins.push(p);
            } else if p.join("main.rs").is_file() {
                bins.push(p.join("main.rs"));
            }
        }
    }
    bins.sort();
    roots.extend(bins);
    roots
}
