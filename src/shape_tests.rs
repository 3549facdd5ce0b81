//! The shape of the broker library's source, checked: no file of `src/` above
//! [`FILE_LINES_MAX`] lines and no function above [`FN_LINES_MAX`], tests included, so that a
//! file holds one job and a function can be read at once. A file that must be longer (a table)
//! says why on a line of its own starting with `// long file:`; none does today.

use std::path::{Path, PathBuf};

const FILE_LINES_MAX: usize = 800;
const FN_LINES_MAX: usize = 100;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            // Build output and fuzzing corpora hold no sources of ours.
            if !path.ends_with("target") && !path.ends_with("corpus") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The name of the function a line starts, if it starts one (`pub`, `async`, `const`... in
/// front allowed).
fn function_name(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    loop {
        let next = [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "async ",
            "const ",
            "unsafe ",
        ]
        .iter()
        .find_map(|prefix| rest.strip_prefix(prefix));
        match next {
            Some(after) => rest = after,
            None => break,
        }
    }
    let name = rest.strip_prefix("fn ")?;
    let end = name.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&name[..end])
}

/// Functions longer than [`FN_LINES_MAX`]: (first line, name, lines). A function ends at the
/// first line that is its closing brace at its own indentation (rustfmt's layout); one
/// declared without a body (a trait method) has none.
fn long_functions(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut long = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = function_name(line) else {
            continue;
        };
        let indent = &line[..line.len() - line.trim_start().len()];
        let closing = format!("{indent}}}");
        // The body opens on the first line with a brace; a body that closes on that line too,
        // or a declaration that ends before any brace, is no long function.
        let Some(open) = (i..lines.len())
            .find(|&j| lines[j].contains('{') || lines[j].trim_end().ends_with(';'))
        else {
            continue;
        };
        let opening = lines[open];
        if !opening.contains('{') || opening.matches('{').count() == opening.matches('}').count() {
            continue;
        }
        let end = (open..lines.len()).find(|&j| lines[j] == closing);
        if let Some(end) = end {
            let length = end - i + 1;
            if length > FN_LINES_MAX {
                long.push((i + 1, name.to_owned(), length));
            }
        }
    }
    long
}

/// The workspace's Rust sources beside the library: its tests, the simulator, the fuzzers,
/// the benchmarks and the other crates. Their functions are held to the same length.
const BESIDE_THE_LIBRARY: [&str; 7] = [
    "tests", "sim", "fuzz", "benches", "oracle", "loadgen", "jepsen",
];

/// Every `.rs` file under the workspace folders `dirs` (build output skipped), sorted.
fn sources(dirs: &[&str]) -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in dirs {
        let dir = root.join(dir);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
    }
    files.sort();
    files
}

/// What is too long in `files`: every function, and the files themselves when `files_too`.
fn too_long(files: &[PathBuf], files_too: bool) -> Vec<String> {
    let mut broken = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).expect("source file");
        let lines = text.lines().count();
        let says_why = text.lines().any(|l| l.starts_with("// long file:"));
        if files_too && lines > FILE_LINES_MAX && !says_why {
            broken.push(format!(
                "{}: {lines} lines (at most {FILE_LINES_MAX}, or say why with `// long file:`)",
                path.display()
            ));
        }
        for (line, name, length) in long_functions(&text) {
            broken.push(format!(
                "{}:{line}: fn {name} is {length} lines (at most {FN_LINES_MAX})",
                path.display()
            ));
        }
    }
    broken
}

#[test]
fn no_file_or_function_of_the_library_is_too_long() {
    let files = sources(&["src"]);
    assert!(files.len() > 50, "the walk found the sources");
    let broken = too_long(&files, true);
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn no_function_beside_the_library_is_too_long() {
    let files = sources(&BESIDE_THE_LIBRARY);
    assert!(files.len() > 50, "the walk found the sources");
    let broken = too_long(&files, false);
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn a_long_function_is_found() {
    let body = "        step();\n".repeat(FN_LINES_MAX);
    let text = format!(
        "impl X {{\n    fn short() {{}}\n    pub fn long(&self) {{\n{body}    }}\n\n    fn tiny() {{}}\n}}\n"
    );
    assert_eq!(
        long_functions(&text),
        vec![(3, "long".to_owned(), FN_LINES_MAX + 2)]
    );
    let declared = "trait T {\n    fn f(&self);\n}\nfn g() {\n}\n";
    assert!(long_functions(declared).is_empty());
}
