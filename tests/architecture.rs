//! Keeps `src/` a one-way house (see ARCHITECTURE.md): reads the `crate::`
//! and `super::` paths of every file and fails when
//!
//! - two rooms import each other, directly or through others. A room is a
//!   module with everything below it; the check runs among the children of
//!   every module (the rooms of `src/`, then the files of `rtmpt/`, …), so
//!   `rtmpt::session` ↔ `rtmpt::table` is a cycle, while `rtmpt/mod.rs`
//!   using its own files is not;
//! - a protocol room imports one of the binary's rooms;
//! - a file grows past [`MAX_LINES`].
//!
//! Run with `--nocapture` to print the room graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest file allowed in `src/`.
const MAX_LINES: usize = 450;

/// Rooms that speak protocols and must not know how the binary runs them.
const PROTOCOL_ROOMS: &[&str] = &["rtmp", "rtmpt", "tls", "sniff", "proxy_protocol", "auth"];

/// The binary's rooms: accept loops, per-connection dispatch, admin, main.
const BINARY_ROOMS: &[&str] = &["listener", "connection", "admin", "server", "main"];

/// A module path from the crate root, e.g. `["rtmpt", "session"]`.
type ModPath = Vec<String>;

/// Every `.rs` file of `src/` with its module path.
fn modules(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src readable") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut parts: ModPath = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The module paths a file names, in `use` trees (`use crate::{a, b::c}`)
/// and inline (`crate::a::f()`, `super::b`), each cut to the longest prefix
/// that is a module.
fn imports(text: &str, this: &ModPath, known: &BTreeMap<ModPath, PathBuf>) -> BTreeSet<ModPath> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths = Vec::new();
    for (at, _) in code.match_indices("use ") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| !(c.is_whitespace() || ";{}".contains(c))) {
            continue;
        }
        let stmt = &code[at + 4..];
        let stmt = &stmt[..stmt.find(';').unwrap_or(stmt.len())];
        let tree: String = stmt.chars().filter(|c| !c.is_whitespace()).collect();
        expand("", &tree, &mut paths);
    }
    for (at, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // part of a longer path, or of a name
        }
        let path: String = code[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(path);
    }
    let mut out = BTreeSet::new();
    for path in paths {
        let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut full: ModPath;
        let mut rest = segs.as_slice();
        match rest.first() {
            Some(&"crate") => {
                full = Vec::new();
                rest = &rest[1..];
            }
            Some(&"super") | Some(&"self") => {
                full = this.clone();
                while let Some(&s) = rest.first() {
                    match s {
                        "super" => drop(full.pop()),
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
            }
            _ => continue, // an external crate
        }
        full.extend(rest.iter().map(|s| s.to_string()));
        while !full.is_empty() && !known.contains_key(&full) {
            full.pop();
        }
        if !full.is_empty() && &full != this {
            out.insert(full);
        }
    }
    out
}

/// Flattens a whitespace-free `use` tree such as `crate::{a::B,c::{D,E}}`
/// into full paths.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let Some(open) = tree.find('{') else {
        out.push(format!("{prefix}{tree}"));
        return;
    };
    let head = format!("{prefix}{}", &tree[..open]);
    let inner = tree[open + 1..]
        .strip_suffix('}')
        .unwrap_or(&tree[open + 1..]);
    let (mut depth, mut from) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&head, &inner[from..i], out);
                from = i + 1;
            }
            _ => {}
        }
    }
    if from < inner.len() {
        expand(&head, &inner[from..], out);
    }
}

/// An edge `from → to` lifted to the level where the two part: the pair of
/// sibling rooms under their deepest common parent, or `None` when one
/// contains the other.
fn lift(from: &ModPath, to: &ModPath) -> Option<(ModPath, String, String)> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    if common == from.len() || common == to.len() {
        return None;
    }
    Some((
        from[..common].to_vec(),
        from[common].clone(),
        to[common].clone(),
    ))
}

/// The strongly connected components with more than one member (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn name(path: &[String]) -> String {
    if path.is_empty() {
        "crate".to_string()
    } else {
        path.join("::")
    }
}

#[test]
fn src_is_a_one_way_house() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    let mut problems = Vec::new();
    // parent module → (child room → child rooms it uses)
    let mut levels: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, path) in &known {
        let text = std::fs::read_to_string(path).expect("source readable");
        let lines = text.lines().count();
        if lines > MAX_LINES {
            problems.push(format!(
                "{} has {lines} lines (at most {MAX_LINES}): split it by concept",
                path.display()
            ));
        }
        for target in imports(&text, module, &known) {
            let room = |p: &ModPath| p.first().cloned().unwrap_or_default();
            if PROTOCOL_ROOMS.contains(&room(module).as_str())
                && BINARY_ROOMS.contains(&room(&target).as_str())
            {
                problems.push(format!(
                    "protocol room {} imports the binary's {}: pass what it needs in instead",
                    name(module),
                    name(&target)
                ));
            }
            if let Some((parent, from, to)) = lift(module, &target) {
                levels
                    .entry(parent)
                    .or_default()
                    .entry(from)
                    .or_default()
                    .insert(to);
            }
        }
    }
    for (parent, graph) in &levels {
        println!("in {}:", name(parent));
        for (from, tos) in graph {
            let tos: Vec<_> = tos.iter().map(String::as_str).collect();
            println!("  {from} -> {}", tos.join(", "));
        }
        for cycle in cycles(graph) {
            problems.push(format!(
                "in {}: {} import each other (directly or through one another); move what they share into a room below both",
                name(parent),
                cycle.join(", ")
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_checker_finds_a_cycle_and_lifts_edges() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    graph.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
    graph.remove("c");
    assert!(cycles(&graph).is_empty());

    let p = |s: &str| s.split("::").map(String::from).collect::<ModPath>();
    assert_eq!(
        lift(&p("rtmpt::session"), &p("rtmpt::table")),
        Some((p("rtmpt"), "session".into(), "table".into()))
    );
    assert_eq!(
        lift(&p("routed::rechunk"), &p("connection")),
        Some((vec![], "routed".into(), "connection".into()))
    );
    assert_eq!(lift(&p("rtmpt"), &p("rtmpt::session")), None);

    let mut known = BTreeMap::new();
    for m in ["rtmpt", "rtmpt::session", "rtmpt::table", "metrics"] {
        known.insert(p(m), PathBuf::new());
    }
    let found = imports(
        "use super::table::{Command, SessionTable};\nuse crate::{\n    metrics::Metrics, // crate::nope\n    rtmpt::{self},\n};\nuse std::io;\nlet x = crate::rtmpt::RtmptSettings::default();",
        &p("rtmpt::session"),
        &known,
    );
    assert_eq!(
        found,
        BTreeSet::from([p("rtmpt::table"), p("metrics"), p("rtmpt")])
    );
}
