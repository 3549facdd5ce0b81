//! The module map of `src/lib.rs`, checked against the code: every module has a row, no module
//! names what its row forbids, and no two top-level modules import each other, directly or
//! through others. The table is the only list of rules: this file reads it.
//!
//! A module's code is every `.rs` file of `src/<module>.rs` and `src/<module>/`, tests
//! included, without its comments (doc links may name any module) and string literals. It
//! names a Keel module by a `crate::x` path (alone, in a `use crate::{x::…, y::…}` group,
//! or inline), or by enough `super::` to climb out of its own; it names a crate by a path
//! that starts with it (`tokio::…`, `use tokio`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What one row of the map forbids.
#[derive(Debug, Default)]
struct Rule {
    modules: BTreeSet<String>,
    crates: BTreeSet<String>,
}

/// A name the code uses: a top-level Keel module, or a crate.
#[derive(Debug)]
struct Reference {
    line: usize,
    name: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The top-level modules `lib.rs` declares (`mod x;`), test-only ones aside.
fn declared_modules(lib: &str) -> Vec<String> {
    let mut modules = Vec::new();
    let mut test_only = false;
    for line in lib.lines().map(str::trim) {
        let declared = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "))
            .and_then(|rest| rest.strip_suffix(';'));
        if let Some(name) = declared {
            if !test_only {
                modules.push(name.to_owned());
            }
        }
        test_only = line == "#[cfg(test)]";
    }
    modules
}

/// The names of `[dependencies]` in `Cargo.toml`, as code spells them (`-` as `_`).
fn dependencies(manifest: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
        } else if let Some((key, _)) = line.split_once('=').filter(|_| in_dependencies) {
            names.insert(key.trim().replace('-', "_"));
        }
    }
    names
}

/// The backticked names of a table cell.
fn backticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// The rules of the module map, by module. Panics on a table that does not fit the modules:
/// a module without a row, a row without a module, or a backticked name that is neither a
/// module nor a dependency.
fn rules(lib: &str, modules: &[String], crates: &BTreeSet<String>) -> BTreeMap<String, Rule> {
    let is_module = |name: &str| modules.iter().any(|m| m == name);
    let mut rules = BTreeMap::new();
    let rows = lib.lines().filter_map(|l| l.strip_prefix("//! |"));
    // The header and the `|---|` line that follows it.
    for row in rows.skip(2) {
        let cells: Vec<&str> = row.trim_end().trim_end_matches('|').split('|').collect();
        let (Some(first), Some(last)) = (cells.first(), cells.last()) else {
            continue;
        };
        let module = backticked(first)
            .first()
            .copied()
            .unwrap_or_else(|| panic!("module map: a row names no module: |{row}"));
        assert!(
            is_module(module),
            "module map: `{module}` is no module of lib.rs"
        );
        let mut rule = Rule::default();
        for clause in last.split(';') {
            let named = backticked(clause);
            if let Some(name) = named
                .iter()
                .find(|n| !is_module(n) && !crates.contains(**n))
            {
                panic!("module map, row of `{module}`: `{name}` is neither a module nor a crate");
            }
            if clause.contains("every other Keel module") {
                // All modules but this one and those the clause names.
                let others = modules.iter().filter(|m| *m != module);
                rule.modules
                    .extend(others.filter(|m| !named.contains(&m.as_str())).cloned());
                continue;
            }
            for name in named {
                if is_module(name) {
                    rule.modules.insert(name.to_owned());
                } else {
                    rule.crates.insert(name.to_owned());
                }
            }
        }
        let previous = rules.insert(module.to_owned(), rule);
        assert!(previous.is_none(), "module map: `{module}` has two rows");
    }
    for module in modules {
        assert!(
            rules.contains_key(module),
            "module map: no row for `{module}`"
        );
    }
    rules
}

/// The files of a top-level module, each with the depth of its module (`src/x.rs` and
/// `src/x/mod.rs`: 1, `src/x/y.rs`: 2, ...).
fn module_files(src: &Path, module: &str) -> Vec<(PathBuf, usize)> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, usize)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, depth + 1, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let own = path.file_name().is_some_and(|n| n == "mod.rs");
                out.push((path, if own { depth } else { depth + 1 }));
            }
        }
    }
    let mut files = Vec::new();
    let single = src.join(format!("{module}.rs"));
    if single.is_file() {
        files.push((single, 1));
    }
    let dir = src.join(module);
    if dir.is_dir() {
        walk(&dir, 1, &mut files);
    }
    files
}

/// `text` with its comments, string literals and character literals blanked out (line breaks
/// kept, so lines still count).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let blank = |out: &mut String, span: &[char]| {
        out.extend(span.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    };
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        let before = i.checked_sub(1).map(|j| chars[j]);
        let len = if rest.starts_with(&['/', '/']) {
            rest.iter().position(|&c| c == '\n').unwrap_or(rest.len())
        } else if rest.starts_with(&['/', '*']) {
            // Block comments nest.
            let (mut depth, mut j) = (0, 0);
            while j < rest.len() {
                if rest[j..].starts_with(&['/', '*']) {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(&['*', '/']) {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            j
        } else if rest[0] == 'r' && !before.is_some_and(ident) && raw_string_len(rest).is_some() {
            raw_string_len(rest).expect("checked")
        } else if rest[0] == 'b' && rest.get(1) == Some(&'r') && !before.is_some_and(ident) {
            raw_string_len(&rest[1..]).map_or(0, |n| n + 1)
        } else if rest[0] == '"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != '"' {
                j += if rest[j] == '\\' { 2 } else { 1 };
            }
            j + 1
        } else if rest[0] == '\'' && rest.get(1) == Some(&'\\') {
            // An escape: the character after the backslash may itself be a quote.
            rest.iter()
                .skip(3)
                .position(|&c| c == '\'')
                .map_or(1, |j| j + 4)
        } else if rest[0] == '\'' && rest.get(2) == Some(&'\'') {
            3
        } else {
            0
        };
        if len == 0 {
            out.push(rest[0]);
            i += 1;
        } else {
            let end = (i + len).min(chars.len());
            blank(&mut out, &chars[i..end]);
            i = end;
        }
    }
    out
}

/// The length of the raw string literal `chars` starts with (`r"…"`, `r#"…"#`, ...), if it
/// starts with one.
fn raw_string_len(chars: &[char]) -> Option<usize> {
    let hashes = chars[1..].iter().take_while(|&&c| c == '#').count();
    if chars.get(1 + hashes) != Some(&'"') {
        return None;
    }
    let body = 2 + hashes;
    let closing: Vec<char> = std::iter::once('"')
        .chain((0..hashes).map(|_| '#'))
        .collect();
    let end = (body..chars.len()).find(|&j| chars[j..].starts_with(&closing));
    Some(end.map_or(chars.len(), |j| j + closing.len()))
}

/// The 1-based line of byte offset `at` of `code`.
fn line_of(code: &str, at: usize) -> usize {
    code[..at].matches('\n').count() + 1
}

/// The identifier `code` starts with.
fn identifier(code: &str) -> &str {
    let end = code
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(code.len());
    &code[..end]
}

/// Whether the identifier or path at byte offset `at` of `code` starts there (is not the tail
/// of a longer name or path).
fn starts_path(code: &str, at: usize) -> bool {
    let last = code[..at].chars().next_back();
    !last.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$')
}

/// The top-level items a `crate::{…}` group names, the group starting at byte offset `open`
/// (its `{`), each with its offset.
fn group_items(code: &str, open: usize) -> Vec<(usize, &str)> {
    let mut items = Vec::new();
    let mut depth = 0;
    // Whether the next word at depth 1 starts an item.
    let mut expecting = true;
    for (offset, c) in code[open..].char_indices() {
        let at = open + offset;
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expecting = true,
            _ if depth == 1 && expecting && !c.is_whitespace() => {
                expecting = false;
                items.push((at, identifier(&code[at..])));
            }
            _ => {}
        }
    }
    items
}

/// Offsets of the `{` and `}` of every inline `mod x { … }` of `code`.
fn inline_modules(code: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for (at, _) in code.match_indices("mod ") {
        if !starts_path(code, at) {
            continue;
        }
        let after = &code[at + 4..];
        let name = identifier(after.trim_start());
        let rest = after.trim_start()[name.len()..].trim_start();
        if name.is_empty() || !rest.starts_with('{') {
            continue;
        }
        let open = code.len() - rest.len();
        let mut depth = 0;
        for (offset, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => continue,
            }
            if depth == 0 {
                spans.push((open, open + offset));
                break;
            }
        }
    }
    spans
}

/// The top-level Keel modules `code` names, in a file of a module at `depth`.
fn module_references(code: &str, depth: usize, modules: &[String]) -> Vec<Reference> {
    let is_module = |name: &str| modules.iter().any(|m| m == name);
    let mut found = Vec::new();
    let mut push = |at: usize, name: &str| {
        if is_module(name) {
            found.push((at, name.to_owned()));
        }
    };
    for (at, _) in code.match_indices("crate::") {
        // `$crate::x` in a macro is `crate::x` too.
        if !(starts_path(code, at) || code[..at].ends_with('$')) {
            continue;
        }
        let after = at + "crate::".len();
        if code[after..].starts_with('{') {
            for (item, name) in group_items(code, after) {
                push(item, name);
            }
        } else {
            push(after, identifier(&code[after..]));
        }
    }
    // `super::super::x` from deep enough climbs to the crate's root.
    let nested = inline_modules(code);
    for (at, _) in code.match_indices("super::") {
        if !starts_path(code, at) {
            continue;
        }
        let mut climbs = 0;
        let mut rest = &code[at..];
        while let Some(next) = rest.strip_prefix("super::") {
            climbs += 1;
            rest = next;
        }
        let inside = nested.iter().filter(|(o, c)| *o < at && at < *c).count();
        if climbs == depth + inside {
            let after = code.len() - rest.len();
            if rest.starts_with('{') {
                for (item, name) in group_items(code, after) {
                    push(item, name);
                }
            } else {
                push(after, identifier(rest));
            }
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|(at, name)| Reference {
            line: line_of(code, at),
            name,
        })
        .collect()
}

/// The lines on which `code` uses crate `name` (`name::…`, `use name`).
fn crate_references(code: &str, name: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    for (at, _) in code.match_indices(name) {
        let after = &code[at + name.len()..];
        let used = after.starts_with("::") || code[..at].ends_with("use ");
        let whole = !after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
        if used && whole && starts_path(code, at) {
            lines.push(line_of(code, at));
        }
    }
    lines.dedup();
    lines
}

/// Every reference of each module's code to another Keel module, with where it is.
type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

struct Scan {
    modules: Vec<String>,
    rules: BTreeMap<String, Rule>,
    graph: Graph,
    /// Where each module uses a crate its row forbids.
    crate_breaches: Vec<String>,
}

fn scan() -> Scan {
    let root = root();
    let src = root.join("src");
    let lib = read(&src.join("lib.rs"));
    let modules = declared_modules(&lib);
    let rules = rules(
        &lib,
        &modules,
        &dependencies(&read(&root.join("Cargo.toml"))),
    );
    let mut graph = Graph::new();
    let mut crate_breaches = Vec::new();
    for module in &modules {
        let edges = graph.entry(module.clone()).or_default();
        let files = module_files(&src, module);
        assert!(!files.is_empty(), "module map: no file for `{module}`");
        for (path, depth) in files {
            let code = code_only(&read(&path));
            let shown = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            for reference in module_references(&code, depth, &modules) {
                if reference.name != *module {
                    let place = format!("{shown}:{}", reference.line);
                    edges.entry(reference.name).or_default().push(place);
                }
            }
            for name in &rules[module].crates {
                for line in crate_references(&code, name) {
                    crate_breaches.push(format!(
                        "{shown}:{line}: `{module}` uses crate `{name}`, which the module map \
                         (src/lib.rs, row of `{module}`) forbids"
                    ));
                }
            }
        }
    }
    Scan {
        modules,
        rules,
        graph,
        crate_breaches,
    }
}

/// A cycle of `graph` as its modules in order (the first again at the end), if it has one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit<'a>(
        graph: &'a Graph,
        node: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[start..].iter().map(|n| n.to_string()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            if let Some(cycle) = visit(graph, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_what_the_module_map_forbids() {
    let scan = scan();
    let mut breaches = scan.crate_breaches.clone();
    for (module, edges) in &scan.graph {
        let forbidden = &scan.rules[module].modules;
        for (target, places) in edges.iter().filter(|(t, _)| forbidden.contains(*t)) {
            breaches.extend(places.iter().map(|place| {
                format!(
                    "{place}: `{module}` imports `{target}`, which the module map (src/lib.rs, \
                     row of `{module}`) forbids"
                )
            }));
        }
    }
    assert!(breaches.is_empty(), "\n{}\n", breaches.join("\n"));
}

#[test]
fn top_level_modules_import_each_other_in_no_cycle() {
    let scan = scan();
    if let Some(cycle) = find_cycle(&scan.graph) {
        let mut message = format!("the top-level modules import each other in a cycle: {}", {
            cycle.join(" → ")
        });
        for pair in cycle.windows(2) {
            let places = &scan.graph[&pair[0]][&pair[1]];
            let _ = write!(
                message,
                "\n  {} → {}: {}",
                pair[0],
                pair[1],
                places.join(", ")
            );
        }
        panic!("{message}");
    }
    assert!(scan.modules.len() > 1);
}

#[test]
fn references_are_read_from_code_only() {
    let code = code_only(
        "use crate::{a::X,\n    b::{Y, Z}, self};\n// crate::c::W\n/* crate::d /* nested */ \
         crate::d */\nlet s = \"crate::e\"; let r = r#\"crate::f\"#; let q = '\"';\n\
         crate::g::h(); my_crate::i::j(); pub(crate) fn k() {}\n",
    );
    let modules: Vec<String> = "a b c d e f g i".split(' ').map(str::to_owned).collect();
    let names: Vec<(usize, String)> = module_references(&code, 1, &modules)
        .into_iter()
        .map(|r| (r.line, r.name))
        .collect();
    let expected = [(1, "a"), (2, "b"), (6, "g")];
    assert_eq!(names, expected.map(|(l, n)| (l, n.to_owned())));
}

#[test]
fn super_paths_that_climb_out_of_a_module_name_another() {
    let code = code_only("use super::x;\nmod tests {\n    use super::super::y;\n}\n");
    let modules: Vec<String> = ["x", "y"].map(str::to_owned).to_vec();
    // In `src/m.rs` (depth 1) `super::x` is the crate's `x`; from its inline tests module
    // `super::super::y` is the crate's `y`.
    let names: Vec<String> = module_references(&code, 1, &modules)
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["x", "y"]);
    // In `src/m/n.rs` (depth 2) neither leaves `m`.
    assert!(module_references(&code, 2, &modules).is_empty());
}

#[test]
fn crates_are_found_by_their_paths() {
    let code = code_only("use tokio::sync;\n#[tokio::test]\nlet a = my_tokio::x; tokio_util::y;\n");
    assert_eq!(crate_references(&code, "tokio"), [1, 2]);
    assert_eq!(crate_references(&code, "rand"), Vec::<usize>::new());
}
