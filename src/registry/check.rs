//! The checks that turn one parsed registry file into a domain value. Every check records its problem
//! under the file and key and returns `None`, so one load reports everything that is wrong at once.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::types::{EntityId, HttpUrl, RedirectUri};
use crate::config::Problems;
use crate::crypto::secret::SecretRef;

/// Written in URL values of registry files; replaced by the configured public URL, so the development
/// entries follow a changed port.
pub const PUBLIC_URL_PLACEHOLDER: &str = "{public_url}";

/// What every file of one load is checked against.
pub(crate) struct LoadContext {
    /// The public URL without a trailing slash, as it replaces the placeholder.
    pub public_url: String,
    pub dev_simulators: bool,
}

impl LoadContext {
    pub(super) fn new(public_url: &url::Url, dev_simulators: bool) -> Self {
        LoadContext { public_url: public_url.as_str().trim_end_matches('/').to_owned(), dev_simulators }
    }

    /// Where the development simulators live; an upstream there is a simulator.
    pub(super) fn dev_prefix(&self) -> String {
        format!("{}/dev/", self.public_url)
    }
}

pub(crate) struct FileCheck<'a> {
    pub source: &'a str,
    pub context: &'a LoadContext,
    problems: &'a mut Problems,
    /// Every secret the file named, as resolved: a rotated secret file changes the entity even when
    /// the registry file itself stays the same.
    secrets: Sha256,
}

impl<'a> FileCheck<'a> {
    pub(super) fn new(source: &'a str, context: &'a LoadContext, problems: &'a mut Problems) -> Self {
        FileCheck { source, context, problems, secrets: Sha256::new() }
    }

    /// The file's fingerprint: its bytes (`file_digest`) and every secret it resolved. Only compared,
    /// never shown, so no secret can be read from it.
    pub(super) fn fingerprint(self, file_digest: &[u8; 32]) -> Fingerprint {
        let mut hasher = Sha256::new();
        hasher.update(file_digest);
        hasher.update(self.secrets.finalize());
        Fingerprint(hasher.finalize().into())
    }

    pub(super) fn problem(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(self.source, key, reason);
    }

    /// Records the problem of a failed parse and keeps the value of a successful one.
    pub(super) fn accept<T>(&mut self, key: &str, parsed: Result<T, String>) -> Option<T> {
        parsed.map_err(|reason| self.problem(key, reason)).ok()
    }

    pub(super) fn non_empty(&mut self, key: &str, value: &str) -> Option<String> {
        if value.trim().is_empty() {
            self.problem(key, "must not be empty");
            None
        } else {
            Some(value.to_owned())
        }
    }

    pub(super) fn positive_secs(&mut self, key: &str, secs: u64) -> Option<Duration> {
        if secs == 0 {
            self.problem(key, "must be greater than zero");
            None
        } else {
            Some(Duration::from_secs(secs))
        }
    }

    pub(super) fn entity_id(&mut self, key: &str, value: &str) -> Option<EntityId> {
        self.accept(key, EntityId::parse(value))
    }

    pub(super) fn http_url(&mut self, key: &str, value: &str) -> Option<HttpUrl> {
        let expanded = self.expand(value);
        self.accept(key, HttpUrl::parse(&expanded))
    }

    /// A URL the service chose and pforte calls (its `notification_url`, its `jwks_uri`): also in
    /// reach (SECURITY.md #28), https to a public host, loopback only with the development
    /// simulators. The address a name resolves to is checked again when connecting.
    pub(super) fn service_url(&mut self, key: &str, value: &str) -> Option<HttpUrl> {
        let url = self.http_url(key, value)?;
        let reach = crate::http_client::Reach::for_development(self.context.dev_simulators);
        match reach.check_url(url.url()) {
            Ok(()) => Some(url),
            Err(rule) => {
                self.problem(key, format!("`{}` {rule}", url.as_str()));
                None
            }
        }
    }

    pub(super) fn redirect_uri(&mut self, key: &str, value: &str) -> Option<RedirectUri> {
        let expanded = self.expand(value);
        self.accept(key, RedirectUri::parse(&expanded))
    }

    fn expand(&self, value: &str) -> String {
        value.replace(PUBLIC_URL_PLACEHOLDER, &self.context.public_url)
    }

    /// Reads the secret now, so a missing variable or file stops the start instead of the first request.
    pub(super) fn secret(&mut self, key: &str, secret: &SecretRef) -> Option<SecretString> {
        if secret.is_plain() && !self.context.dev_simulators {
            self.problem(key, "plain: secrets are for development only; use env:NAME or file:PATH");
            return None;
        }
        let value = self.accept(key, secret.resolve())?;
        // Length-prefixed, so two secrets cannot run into each other and look like one.
        for part in [key.as_bytes(), value.expose_secret().as_bytes()] {
            self.secrets.update((part.len() as u64).to_be_bytes());
            self.secrets.update(part);
        }
        Some(value)
    }

    /// Another file the entity is read from (e.g. a SAML IdP's metadata): a reload that finds it
    /// changed rebuilds the entity even when the registry file stayed the same.
    pub(super) fn depends_on(&mut self, key: &str, contents: &[u8]) {
        for part in [key.as_bytes(), contents] {
            self.secrets.update((part.len() as u64).to_be_bytes());
            self.secrets.update(part);
        }
    }

    /// A secret the chosen method needs.
    pub(super) fn required_secret(
        &mut self,
        key: &str,
        secret: Option<&SecretRef>,
        needed_by: &str,
    ) -> Option<SecretString> {
        match secret {
            Some(secret) => self.secret(key, secret),
            None => {
                self.problem(key, format!("is required {needed_by}"));
                None
            }
        }
    }

    /// A value the chosen method does not use: most likely a mix-up, so it is reported, not ignored.
    pub(super) fn unused<T>(&mut self, key: &str, value: Option<&T>, not_used_by: &str) {
        if value.is_some() {
            self.problem(key, format!("is not used {not_used_by}; remove it"));
        }
    }

    /// A private key for signing (PEM or JSON Web Key); only the shape is checked here.
    pub(super) fn private_key(
        &mut self,
        key: &str,
        secret: Option<&SecretRef>,
        needed_by: &str,
    ) -> Option<SecretString> {
        let value = self.required_secret(key, secret, needed_by)?;
        if looks_like_private_key(value.expose_secret()) {
            Some(value)
        } else {
            self.problem(key, "must be a PEM private key (-----BEGIN ... PRIVATE KEY-----) or a private JSON Web Key");
            None
        }
    }
}

/// What one registry entity was loaded from (see [`FileCheck::fingerprint`]); equal fingerprints mean
/// the entity is the same as before.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint([u8; 32]);

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprint(..)")
    }
}

fn looks_like_private_key(text: &str) -> bool {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return text.contains("PRIVATE KEY-----");
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(jwk)) => jwk.contains_key("kty") && jwk.contains_key("d"),
        _ => false,
    }
}
