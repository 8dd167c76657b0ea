//! The architecture test: reads `src/` and fails on an import that crosses a layer the wrong way, on an
//! import cycle between top-level modules, on a module without a first doc comment saying what it owns,
//! and on documentation that names files or security measures that do not exist.
//!
//! The rules live here, in [`LAYERS`] and [`MAY_IMPORT`], and nowhere else; `docs/architecture.md`
//! describes them for people. A new top-level module must be added to both tables before this test
//! passes, so every module has a place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every top-level module of `src/` and its layer.
const LAYERS: &[(&str, &str)] = &[
    ("app", "composition"),
    ("cli", "edge"),
    ("http", "edge"),
    ("fuzzing", "edge"),
    ("dev", "simulators"),
    ("identity", "domain"),
    ("payment", "domain"),
    ("finance", "domain"),
    ("health", "domain"),
    ("transfer", "domain"),
    ("registry", "below"),
    ("store", "below"),
    ("keys", "below"),
    ("audit", "below"),
    ("crypto", "below"),
    ("config", "below"),
    ("clock", "below"),
    ("http_client", "below"),
    ("telemetry", "below"),
    ("model", "below"),
];

/// Which top-level modules each may import (`crate::<module>`). Everything not listed is forbidden.
/// Read top to bottom, it is the layering: a module only names modules of its own layer that are
/// listed, or layers below it.
const MAY_IMPORT: &[(&str, &[&str])] = &[
    // Composition: builds everything and may reach everything.
    (
        "app",
        &[
            "cli",
            "http",
            "dev",
            "identity",
            "payment",
            "finance",
            "health",
            "transfer",
            "registry",
            "store",
            "model",
            "keys",
            "audit",
            "crypto",
            "config",
            "clock",
            "http_client",
            "telemetry",
        ],
    ),
    // Edge: the command line serves through app; HTTP never reaches the command line, app or simulators.
    (
        "cli",
        &[
            "app",
            "identity",
            "payment",
            "finance",
            "health",
            "registry",
            "store",
            "model",
            "keys",
            "audit",
            "crypto",
            "config",
            "clock",
            "http_client",
            "telemetry",
        ],
    ),
    (
        "http",
        &[
            "identity",
            "payment",
            "finance",
            "health",
            "transfer",
            "registry",
            "store",
            "model",
            "keys",
            "audit",
            "crypto",
            "config",
            "clock",
            "http_client",
            "telemetry",
        ],
    ),
    // The fuzz targets' entry points call the parsers that take outside input.
    ("fuzzing", &["http", "identity", "payment", "finance", "registry"]),
    // Simulators are protocol peers: configuration and primitives only, never pforte's own protocol code.
    ("dev", &["config", "registry", "crypto", "clock"]),
    // Domains: payment and identity know nothing of each other; finance reads payment's vocabulary;
    // payment announces bookable events through its own trait, which finance implements.
    // Domains record metrics through telemetry's functions (names and labels are kept there).
    ("identity", &["registry", "store", "keys", "audit", "crypto", "config", "clock", "http_client", "telemetry"]),
    ("payment", &["model", "registry", "store", "audit", "crypto", "config", "clock", "http_client", "telemetry"]),
    ("finance", &["payment", "model", "registry", "store", "audit", "crypto", "config", "clock"]),
    // Datentransfer delivers ciphertext and signs its event log; it knows neither login nor payment.
    ("transfer", &["model", "registry", "store", "keys", "crypto", "config", "clock", "http_client", "telemetry"]),
    // The operator's view of the dependencies asks both login's and payment's peers.
    ("health", &["identity", "payment", "registry", "store", "clock"]),
    // Below the domains.
    ("registry", &["model", "crypto", "config", "http_client"]),
    ("keys", &["store", "audit", "crypto", "clock"]),
    ("audit", &["store", "crypto", "clock", "telemetry"]),
    ("store", &["model", "config", "clock"]),
    ("config", &["crypto"]),
    // The shared vocabulary: plain values, importing nothing of pforte.
    ("model", &[]),
    ("crypto", &[]),
    ("clock", &[]),
    ("http_client", &[]),
    ("telemetry", &["config"]),
];

/// External crates of the HTTP edge that no domain or lower module may use.
const EDGE_CRATES: &[&str] = &["axum", "tower", "tower_http", "clap"];

/// The layers that must not use [`EDGE_CRATES`].
const WITHOUT_EDGE_CRATES: &[&str] = &["domain", "below"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.rs` files of a top-level module (`src/<name>.rs` or `src/<name>/**`).
fn files_of(module: &str) -> Vec<PathBuf> {
    let src = root().join("src");
    let mut files = Vec::new();
    let single = src.join(format!("{module}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let dir = src.join(module);
    if dir.is_dir() {
        collect_rs(&dir, &mut files);
    }
    files.sort();
    files
}

fn collect_rs(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The source without comments (line comments, doc comments, block comments) and string literals'
/// contents, so prose that mentions `crate::http` is not an import.
fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let bytes: Vec<char> = source.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < bytes.len() && bytes[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < bytes.len() && !(bytes[i] == '*' && bytes[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            i += 1;
            while i < bytes.len() && bytes[i] != '"' {
                if bytes[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&bytes, i) {
            // Raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < bytes.len() && bytes[j] == '#' {
                hashes += 1;
                j += 1;
            }
            if bytes.get(j) == Some(&'"') {
                j += 1;
                let closing: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                let rest: String = bytes[j..].iter().collect();
                let end =
                    rest.find(&closing).map(|p| j + rest[..p].chars().count() + closing.len()).unwrap_or(bytes.len());
                out.push_str("\"\"");
                i = end;
            } else {
                out.push(c);
                i += 1;
            }
        } else if c == '\'' && next.is_some() && bytes.get(i + 2) == Some(&'\'') {
            // A char literal such as '"'.
            out.push_str("' '");
            i += 3;
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal such as '\''.
            let mut j = i + 2;
            while j < bytes.len() && bytes[j] != '\'' {
                j += 1;
            }
            out.push_str("' '");
            i = j + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The top-level modules a piece of code names through `crate::` (plain paths and `use` groups).
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = &rest[..at];
        let after = &rest[at + "crate::".len()..];
        rest = after;
        if before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `pforte_crate::` or `$crate::`
        }
        if let Some(group) = after.strip_prefix('{') {
            for item in top_level_items(group) {
                found.insert(item);
            }
        } else {
            found.insert(leading_ident(after));
        }
    }
    found.retain(|name| !name.is_empty() && name != "self");
    found
}

/// The first identifier of each item of a `{a, b::c, d::{e, f}}` group (the text after `{`).
fn top_level_items(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && !c.is_whitespace() => {
                items.push(leading_ident(&group[i..]));
                start = false;
            }
            _ => {}
        }
    }
    items
}

fn leading_ident(text: &str) -> String {
    text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// External crates named at the start of a path (`axum::…`, `use axum::…`, `::axum::…`).
fn uses_crate(code: &str, name: &str) -> bool {
    let needle = format!("{name}::");
    code.match_indices(&needle).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        !matches!(before, Some(c) if c.is_alphanumeric() || c == '_')
            && !code[..at].ends_with("::")
            && !code[..at].ends_with("crate::")
    }) || code.contains(&format!("::{name}::"))
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap().display().to_string()
}

fn top_level_modules() -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    for entry in fs::read_dir(root().join("src")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() || (path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main") {
            modules.insert(name);
        }
    }
    modules
}

#[test]
fn every_top_level_module_has_a_layer_and_import_rules() {
    let layered: BTreeSet<String> = LAYERS.iter().map(|(m, _)| (*m).to_owned()).collect();
    let ruled: BTreeSet<String> = MAY_IMPORT.iter().map(|(m, _)| (*m).to_owned()).collect();
    let actual = top_level_modules();
    assert_eq!(actual, layered, "src/ and LAYERS disagree: give every top-level module a layer");
    assert_eq!(actual, ruled, "src/ and MAY_IMPORT disagree: give every top-level module its rules");
}

#[test]
fn no_module_imports_across_its_layer_rules() {
    let rules: BTreeMap<&str, &[&str]> = MAY_IMPORT.iter().copied().collect();
    let layers: BTreeMap<&str, &str> = LAYERS.iter().copied().collect();
    let mut violations = Vec::new();
    for (module, allowed) in &rules {
        for file in files_of(module) {
            let code = code_only(&fs::read_to_string(&file).unwrap());
            for imported in crate_imports(&code) {
                if imported != *module && !allowed.contains(&imported.as_str()) {
                    violations.push(format!("{}: {module} may not import crate::{imported}", relative(&file)));
                }
            }
            if WITHOUT_EDGE_CRATES.contains(&layers[module]) {
                for name in EDGE_CRATES {
                    if uses_crate(&code, name) {
                        violations.push(format!("{}: a {} module may not use {name}", relative(&file), layers[module]));
                    }
                }
            }
        }
    }
    assert!(violations.is_empty(), "forbidden imports (rules in tests/architecture.rs):\n{}", violations.join("\n"));
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for module in top_level_modules() {
        let mut edges = BTreeSet::new();
        for file in files_of(&module) {
            edges.extend(crate_imports(&code_only(&fs::read_to_string(&file).unwrap())));
        }
        edges.remove(&module);
        graph.insert(module, edges);
    }
    // Depth-first search for a back edge; the path names the cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle between top-level modules: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn every_module_begins_with_a_doc_comment_saying_what_it_owns() {
    let mut files = Vec::new();
    collect_rs(&root().join("src"), &mut files);
    let undocumented: Vec<String> = files
        .iter()
        .filter(|file| {
            let name = file.file_name().unwrap().to_string_lossy();
            // Unit-test files are documented by the module that includes them.
            name != "tests.rs" && !name.ends_with("_tests.rs")
        })
        .filter(|file| !fs::read_to_string(file).unwrap().trim_start().starts_with("//!"))
        .map(|file| relative(file))
        .collect();
    assert!(undocumented.is_empty(), "modules without a first `//!` doc comment:\n{}", undocumented.join("\n"));
}

#[test]
fn the_architecture_document_names_only_files_that_exist_and_every_module() {
    let doc = fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let mut missing = Vec::new();
    for (i, part) in doc.split('`').enumerate() {
        // Odd parts are inside backticks: `src/...`, `tests/...`, `docs/...`, `migrations/...`.
        if i % 2 == 1
            && ["src/", "tests/", "docs/", "migrations/", "providers/", "config/", "openapi/"]
                .iter()
                .any(|p| part.starts_with(p))
        {
            let path = part.split([' ', ':', '#']).next().unwrap();
            if !root().join(path.trim_end_matches('/')).exists() {
                missing.push(path.to_owned());
            }
        }
    }
    assert!(missing.is_empty(), "docs/architecture.md names paths that do not exist:\n{}", missing.join("\n"));
    let unnamed: Vec<String> = top_level_modules()
        .into_iter()
        .filter(|m| !doc.contains(&format!("`{m}`")) && !doc.contains(&format!("`src/{m}")))
        .collect();
    assert!(unnamed.is_empty(), "docs/architecture.md does not name these modules: {unnamed:?}");
}

#[test]
fn every_security_measure_the_code_cites_is_numbered_in_security_md() {
    let security = fs::read_to_string(root().join("SECURITY.md")).unwrap();
    let numbered: BTreeSet<u32> = security
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .filter_map(|heading| heading.split('.').next()?.trim().parse().ok())
        .collect();
    let mut files = Vec::new();
    collect_rs(&root().join("src"), &mut files);
    collect_rs(&root().join("tests"), &mut files);
    // This file names the pattern itself.
    files.retain(|file| !file.ends_with("tests/architecture.rs"));
    let pattern = "SECURITY.md #";
    let mut unknown = Vec::new();
    for file in &files {
        // Case-insensitive: the old citations wrote `SECURITY.md #N`.
        let text = fs::read_to_string(file).unwrap().to_lowercase();
        for (at, _) in text.match_indices(pattern) {
            let digits: String = text[at + pattern.len()..].chars().take_while(char::is_ascii_digit).collect();
            match digits.parse::<u32>() {
                Ok(n) if numbered.contains(&n) => {}
                _ => unknown.push(format!("{}: #{digits}", relative(file))),
            }
        }
    }
    assert!(!numbered.is_empty(), "SECURITY.md numbers no measures as '### N. …'");
    assert!(unknown.is_empty(), "cited security measures that SECURITY.md does not number:\n{}", unknown.join("\n"));
}

#[test]
fn the_import_reader_sees_groups_paths_and_ignores_prose() {
    let code = code_only(
        "//! see crate::http for the edge\nuse crate::{audit::AuditLog, store::{self, Database}};\n\
         fn f() { crate::clock::now(); let s = \"crate::cli\"; }\n/* crate::dev */",
    );
    let found: Vec<String> = crate_imports(&code).into_iter().collect();
    assert_eq!(found, ["audit", "clock", "store"]);
    assert!(uses_crate("use axum::Router;", "axum"));
    assert!(!uses_crate("use crate::axum_like::X; let my_axum = 1;", "axum"));
}

#[test]
fn unit_tests_follow_one_convention() {
    // A module's unit tests are its child `mod tests`: inline at the end of the file, or in `tests.rs`
    // where Rust looks for that child (`foo.rs` -> `foo/tests.rs`, `foo/mod.rs` -> `foo/tests.rs`).
    // No `#[path]`, no `*_tests.rs` siblings, and the module exists only in test builds.
    let mut files = Vec::new();
    collect_rs(&root().join("src"), &mut files);
    let mut astray = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        if name.ends_with("_tests.rs") {
            astray.push(format!("{}: unit tests belong in `tests.rs`, the module's child", relative(file)));
        }
        let code = code_only(&fs::read_to_string(file).unwrap());
        if code.contains("#[path") {
            astray.push(format!("{}: #[path] hides where a module lives", relative(file)));
        }
        let lines: Vec<&str> = code.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            let declares_tests = *line == "mod tests;" || *line == "mod tests {";
            if declares_tests && (i == 0 || lines[i - 1] != "#[cfg(test)]") {
                astray.push(format!("{}: `mod tests` without #[cfg(test)] right above it", relative(file)));
            }
        }
    }
    assert!(astray.is_empty(), "unit tests off the convention:\n{}", astray.join("\n"));
}
