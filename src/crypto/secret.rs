//! References to secrets kept outside committed files.
//!
//! Configuration and registry files never hold production secrets themselves: they name where a secret
//! lives. `env:NAME` reads an environment variable, `file:PATH` reads a file (trailing newline trimmed),
//! and `plain:VALUE` carries the value inline, which is accepted only while development simulators are
//! on (see `config::Settings::validate` and the registry checks).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

#[derive(Clone)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
    Plain(SecretString),
}

impl SecretRef {
    /// Reads the secret now. The error names the variable or file, never the value.
    pub fn resolve(&self) -> Result<SecretString, String> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
                Ok(_) => Err(format!("environment variable {name} is empty")),
                Err(_) => Err(format!("environment variable {name} is not set")),
            },
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))
                .and_then(|s| {
                    let trimmed = s.trim_end_matches(['\n', '\r']);
                    if trimmed.is_empty() {
                        Err(format!("secret file {} is empty", path.display()))
                    } else {
                        Ok(SecretString::from(trimmed.to_owned()))
                    }
                }),
            SecretRef::Plain(value) => Ok(value.clone()),
        }
    }

    pub fn is_plain(&self) -> bool {
        matches!(self, SecretRef::Plain(_))
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
            SecretRef::Plain(_) => f.write_str("plain:[redacted]"),
        }
    }
}

impl FromStr for SecretRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s.split_once(':').ok_or_else(|| {
            "a secret must be written as env:NAME, file:PATH or (development only) plain:VALUE".to_owned()
        })?;
        if rest.is_empty() {
            return Err(format!("the secret reference `{scheme}:` names nothing"));
        }
        match scheme {
            "env" => {
                if rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    Ok(SecretRef::Env(rest.to_owned()))
                } else {
                    Err(format!("`{rest}` is not a valid environment variable name"))
                }
            }
            "file" => Ok(SecretRef::File(PathBuf::from(rest))),
            "plain" => Ok(SecretRef::Plain(SecretString::from(rest.to_owned()))),
            other => Err(format!(
                "unknown secret scheme `{other}`: use env:NAME, file:PATH or (development only) plain:VALUE"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// Compares two secrets in constant time with respect to their contents.
pub(crate) fn constant_time_eq(a: &SecretString, b: &str) -> bool {
    let a = a.expose_secret().as_bytes();
    let b = b.as_bytes();
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme_and_rejects_others() {
        assert!(matches!("env:PFORTE_X".parse::<SecretRef>(), Ok(SecretRef::Env(n)) if n == "PFORTE_X"));
        assert!(matches!("file:/run/secret".parse::<SecretRef>(), Ok(SecretRef::File(_))));
        assert!("plain:abc".parse::<SecretRef>().is_ok_and(|s| s.is_plain()));
        assert!("vault:abc".parse::<SecretRef>().is_err());
        assert!("env:".parse::<SecretRef>().is_err());
        assert!("env:BAD-NAME".parse::<SecretRef>().is_err());
        assert!("justavalue".parse::<SecretRef>().is_err());
    }

    #[test]
    fn debug_output_never_shows_a_plain_value() {
        let secret: SecretRef = "plain:hunter2".parse().unwrap_or(SecretRef::Env("X".into()));
        assert_eq!(format!("{secret:?}"), "plain:[redacted]");
    }

    #[test]
    fn missing_environment_variable_is_named_in_the_error() {
        let secret = SecretRef::Env("PFORTE_TEST_SURELY_UNSET_VARIABLE".into());
        let err = secret.resolve().err().unwrap_or_default();
        assert!(err.contains("PFORTE_TEST_SURELY_UNSET_VARIABLE"), "{err}");
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        let s = SecretString::from("abc".to_owned());
        assert!(constant_time_eq(&s, "abc"));
        assert!(!constant_time_eq(&s, "abd"));
        assert!(!constant_time_eq(&s, "ab"));
    }
}
