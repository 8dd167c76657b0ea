//! Reads one directory of registry files: one entity per `<id>.toml`, the file stem being the id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::toml_error;
use super::types::EntityId;
use crate::config::Problems;

/// One registry file that parsed: its id, where it came from, and its contents.
pub(crate) struct EntityFile<T> {
    pub id: EntityId,
    pub source: String,
    pub contents: T,
    /// SHA-256 of the file's bytes: with the secrets it names, what tells a reload whether it changed.
    pub digest: [u8; 32],
}

/// What a directory that does not exist means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfMissing {
    /// A deployment without entities of this kind (e.g. no payment providers) is fine.
    Empty,
    /// The directory was configured, so its absence is a mistake.
    Problem,
}

/// Every `.toml` file in `dir`, sorted by name. Other files and subdirectories are ignored, so READMEs
/// and editor backups can sit next to the entries. Files whose stem is no valid id, or whose id differs
/// from an earlier one only in letter case, are reported and left out; they are still parsed so all
/// their problems show up in the same run.
pub(crate) fn read_entity_files<T: DeserializeOwned>(
    dir: &Path,
    if_missing: IfMissing,
    problems: &mut Problems,
) -> Vec<EntityFile<T>> {
    let paths = match toml_files_in(dir, if_missing) {
        Ok(paths) => paths,
        Err(reason) => {
            problems.push(dir.display().to_string(), "", reason);
            return Vec::new();
        }
    };
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut files = Vec::new();
    for path in paths {
        let source = path.display().to_string();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let id = EntityId::parse(&stem)
            .map_err(|reason| problems.push(&source, "", format!("the file name is the id, and {reason}")))
            .ok();
        let read = read_file::<T>(&path, &source, problems);
        let Some(id) = id else { continue };
        if let Some(first) = seen.get(&id.as_str().to_ascii_lowercase()) {
            problems.push(
                &source,
                "",
                format!("the id `{id}` differs only in letter case from the id of {first}; ids must be unique"),
            );
            continue;
        }
        seen.insert(id.as_str().to_ascii_lowercase(), source.clone());
        if let Some((contents, digest)) = read {
            files.push(EntityFile { id, source, contents, digest });
        }
    }
    files
}

fn toml_files_in(dir: &Path, if_missing: IfMissing) -> Result<Vec<PathBuf>, String> {
    if !dir.exists() {
        return match if_missing {
            IfMissing::Empty => Ok(Vec::new()),
            IfMissing::Problem => Err("the directory does not exist".to_owned()),
        };
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the directory: {e}"))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("cannot read the directory: {e}"))?.path();
        if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

fn read_file<T: DeserializeOwned>(path: &Path, source: &str, problems: &mut Problems) -> Option<(T, [u8; 32])> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(source, "", format!("cannot read the file: {e}"));
            return None;
        }
    };
    let contents = toml_error::parse(&text).map_err(|p| problems.push(source, p.key, p.reason)).ok()?;
    Some((contents, Sha256::digest(text.as_bytes()).into()))
}
