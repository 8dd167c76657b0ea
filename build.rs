//! Build script: records the git revision the binary is built from, for the `pforte_build_info`
//! metric (`telemetry::metrics`). A build outside a git checkout (a source archive) says "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    let revision = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PFORTE_GIT_REVISION={revision}");
    // A new commit moves HEAD (or the branch it points at); rerun then, not on every source change.
    // In a worktree `.git` is a file naming the real git directory; HEAD is found through it.
    // Without git, only a change of this script reruns it (by default any file's change would).
    println!("cargo:rerun-if-changed=build.rs");
    for head in git_heads() {
        println!("cargo:rerun-if-changed={head}");
    }
}

/// The files whose change means a new revision: HEAD and the branch ref it names, when they exist.
fn git_heads() -> Vec<String> {
    let Some(git_dir) = git_dir() else { return Vec::new() };
    let head = Path::new(&git_dir).join("HEAD");
    let mut files = vec![head.display().to_string()];
    if let Ok(text) = std::fs::read_to_string(&head) {
        if let Some(reference) = text.trim().strip_prefix("ref: ") {
            let common = Command::new("git")
                .args(["rev-parse", "--git-common-dir"])
                .output()
                .ok()
                .and_then(|output| String::from_utf8(output.stdout).ok())
                .map(|text| text.trim().to_owned())
                .unwrap_or_else(|| git_dir.clone());
            let reference = Path::new(&common).join(reference);
            if reference.exists() {
                files.push(reference.display().to_string());
            }
        }
    }
    files.retain(|file| Path::new(file).exists());
    files
}

fn git_dir() -> Option<String> {
    let output = Command::new("git").args(["rev-parse", "--absolute-git-dir"]).output().ok()?;
    output.status.success().then(|| String::from_utf8(output.stdout).ok()).flatten().map(|s| s.trim().to_owned())
}
