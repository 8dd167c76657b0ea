//! No test can be forgotten: every test-shaped function in the files under tests/api/ must be
//! registered (see `harness.rs`), and every registration must name such a function.
//!
//! Test-shaped is a function item at the start of a line (any visibility) whose signature, with
//! whitespace collapsed, is one of
//! - `async fn NAME(<param>: TestContext) -> TestResult` (a backend test),
//! - `async fn NAME() -> TestResult` (a plain test),
//! - `fn NAME() -> Result<(), Failed>` (a synchronous test),
//!
//! with `anyhow::Result<()>` accepted for `TestResult`. Helpers that borrow a `&TestContext`, take
//! further parameters or return something else are not tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::harness::registered;
use crate::helpers::{TestResult, MANIFEST_DIR};

pub async fn every_test_function_is_registered_and_every_registration_names_one() -> TestResult {
    let root = Path::new(MANIFEST_DIR).join("tests/api");
    let mut functions = BTreeSet::new();
    collect_test_functions(&root, &root, &mut functions)?;
    anyhow::ensure!(functions.len() > 200, "found only {} test functions under {}", functions.len(), root.display());

    let mut registrations: BTreeMap<String, usize> = BTreeMap::new();
    for test in registered() {
        *registrations.entry(test.name()).or_default() += 1;
    }
    let registered_names: BTreeSet<String> = registrations.keys().cloned().collect();

    let mut problems = Vec::new();
    for name in functions.difference(&registered_names) {
        problems.push(format!("{name} is test-shaped but not registered (add e.g. `backend_test!(...);` below it)"));
    }
    for name in registered_names.difference(&functions) {
        problems.push(format!("{name} is registered but no test-shaped function has that name"));
    }
    for (name, count) in registrations.iter().filter(|(_, count)| **count > 1) {
        problems.push(format!("{name} is registered {count} times"));
    }
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
plain_test!(every_test_function_is_registered_and_every_registration_names_one);

/// Adds `module::function` for every test-shaped function in the `.rs` files under `dir`.
fn collect_test_functions(root: &Path, dir: &Path, found: &mut BTreeSet<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_test_functions(root, &path, found)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let module = module_of(root, &path)?;
            for function in test_functions(&std::fs::read_to_string(&path)?) {
                found.insert(if module.is_empty() { function } else { format!("{module}::{function}") });
            }
        }
    }
    Ok(())
}

/// `upstream/mock_op.rs` is `upstream::mock_op`; `main.rs` is the crate root.
fn module_of(root: &Path, file: &Path) -> anyhow::Result<String> {
    let relative = file.strip_prefix(root)?.with_extension("");
    let parts: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
    let parts = match parts.as_slice() {
        [only] if only == "main" => &parts[..0],
        [parent @ .., last] if last == "mod" => parent,
        all => all,
    };
    Ok(parts.join("::"))
}

/// The names of the test-shaped functions in one file's source.
fn test_functions(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (start, _) in source.match_indices("fn ") {
        let line_start = source[..start].rfind('\n').map_or(0, |newline| newline + 1);
        let before = &source[line_start..start];
        if !matches!(before, "" | "async " | "pub " | "pub async " | "pub(crate) " | "pub(crate) async ") {
            continue;
        }
        let Some(body) = source[start..].find('{') else { continue };
        let signature = collapse_whitespace(&source[line_start..start + body]);
        if let Some(name) = test_shaped(&signature) {
            names.push(name.to_owned());
        }
    }
    names
}

/// Collapses runs of whitespace to nothing next to brackets and commas, and to one space elsewhere,
/// so a signature rustfmt wrapped over lines reads as if on one line.
fn collapse_whitespace(text: &str) -> String {
    let mut collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for (wide, narrow) in [("( ", "("), (" )", ")"), (",)", ")")] {
        collapsed = collapsed.replace(wide, narrow);
    }
    collapsed
}

/// The function's name if the collapsed signature (without visibility) has a test's shape.
fn test_shaped(signature: &str) -> Option<&str> {
    let signature = signature.trim_start_matches("pub(crate) ").trim_start_matches("pub ");
    let (is_async, rest) = match signature.strip_prefix("async fn ") {
        Some(rest) => (true, rest),
        None => (false, signature.strip_prefix("fn ")?),
    };
    let (name, rest) = rest.split_once('(')?;
    let (params, returns) = rest.split_once(") -> ")?;
    let returns_test_result = matches!(returns, "TestResult" | "anyhow::Result<()>");
    let shaped = if is_async {
        returns_test_result && (params.is_empty() || takes_owned_context(params))
    } else {
        params.is_empty() && returns == "Result<(), Failed>"
    };
    let is_identifier = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (shaped && is_identifier).then_some(name)
}

/// `ctx: TestContext` (any parameter name), not `&TestContext` and not several parameters.
fn takes_owned_context(params: &str) -> bool {
    params.split_once(": ").is_some_and(|(param, ty)| {
        ty == "TestContext" && !param.contains(',') && param.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

pub async fn the_shape_matches_wrapped_test_signatures_and_no_helpers() -> TestResult {
    // One string per line, so that this file itself holds no test-shaped lines.
    let source = [
        "pub async fn backend(ctx: TestContext) -> TestResult {}",
        "pub async fn wrapped_backend(",
        "    ctx: TestContext,",
        ") -> TestResult {}",
        "pub async fn plain() -> TestResult {}",
        "async fn private_plain() -> anyhow::Result<()> {}",
        "pub fn synchronous() -> Result<(), Failed> {}",
        "pub async fn borrows(ctx: &TestContext) -> TestResult {}",
        "pub async fn more(ctx: TestContext, extra: u8) -> TestResult {}",
        "pub async fn returns_an_app(ctx: TestContext) -> anyhow::Result<TestApp> {}",
        "pub fn not_async() -> TestResult {}",
        "    pub async fn in_an_impl() -> TestResult {}",
        "// pub async fn commented_out() -> TestResult {}",
    ]
    .join("\n");
    let found = test_functions(&source);
    anyhow::ensure!(
        found == ["backend", "wrapped_backend", "plain", "private_plain", "synchronous"],
        "found {found:?}"
    );
    Ok(())
}
plain_test!(the_shape_matches_wrapped_test_signatures_and_no_helpers);
