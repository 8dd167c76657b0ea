//! Destinations (`<transfer.destinations>/<destinationId>.toml`): the Fachverfahren of an authority that
//! pforte delivers online applications to (Datentransfer, FIT-Connect's Zustellpunkt). The file names
//! the tenant, the services received, the subscriber (a registered client), the callback, and the
//! Fachverfahren's public keys: an RSA-OAEP-256 encryption key the senders encrypt to and a PS512 key
//! its own event SETs are verified with, each with an `x5c` chain that is checked here (`keys.rs`).

use std::path::Path;

use secrecy::SecretString;
use serde::Deserialize;

use super::check::FileCheck;
use super::destination_keys::{check_jwks, DestinationKey, KeyUse, TrustAnchors};
use super::files::EntityFile;
use super::types::{EntityId, HttpUrl};
use crate::crypto::secret::SecretRef;

/// The metadata schema versions pforte knows (FIT-Connect metadata 1.0.0).
pub(crate) const METADATA_VERSIONS: &[&str] = &["1.0.0"];
/// The reply channels of metadata 1.0.0.
const REPLY_CHANNELS: &[&str] = &["eMail", "deMail", "fink", "elster"];
/// FIT-Connect's limit on a key id.
const MAX_KID_LEN: usize = 64;

#[derive(Debug, Clone)]
pub struct Destination {
    /// A UUID, lower case, as the file stem gives it.
    pub id: EntityId,
    /// The authority; checked to exist. Senders must list it in their `tenants`.
    pub tenant: EntityId,
    pub status: DestinationStatus,
    pub services: Vec<DestinationService>,
    pub metadata_versions: Vec<String>,
    pub reply_channels: Vec<String>,
    /// The client that fetches, accepts and rejects this destination's submissions; checked to exist.
    pub subscriber_client: EntityId,
    pub callback: Option<DestinationCallback>,
    /// The key senders encrypt to now; one of `keys`.
    pub encryption_kid: String,
    /// Every public key of the Fachverfahren: encryption keys (the current one and, during a
    /// rollover, older ones still accepted) and signing keys.
    pub keys: Vec<DestinationKey>,
}

impl Destination {
    /// An encryption key a sender may still encrypt to: the current one or another listed one
    /// (key rollover: submissions announced before the switch stay deliverable).
    pub fn accepts_encryption_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|key| key.key_use == KeyUse::Encryption && key.kid == kid)
    }

    pub fn key(&self, kid: &str) -> Option<&DestinationKey> {
        self.keys.iter().find(|key| key.kid == kid)
    }

    pub fn signing_keys(&self) -> impl Iterator<Item = &DestinationKey> {
        self.keys.iter().filter(|key| key.key_use == KeyUse::Signing)
    }

    pub fn offers_service(&self, identifier: &str) -> bool {
        self.services.iter().any(|service| service.identifier == identifier)
    }

    /// Whether submissions for the service must name a paid payment (`fee_required`).
    pub fn requires_fee(&self, identifier: &str) -> bool {
        self.services.iter().any(|service| service.identifier == identifier && service.fee_required)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationStatus {
    Active,
    Inactive,
}

impl DestinationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationStatus::Active => "active",
            DestinationStatus::Inactive => "inactive",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DestinationService {
    /// A LeiKa URN, `urn:de:fim:leika:leistung:<digits>`.
    pub identifier: String,
    /// `DE` and up to 12 digits of the regional key.
    pub regions: Vec<String>,
    pub submission_schemas: Vec<SubmissionSchema>,
    /// Submissions for this service must name a payment PAYED for this authority (the announce's
    /// `paymentTransactionId`, pforte's extension); checked at announce and again at submit.
    pub fee_required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionSchema {
    pub schema_uri: String,
    pub mime_type: SchemaMimeType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaMimeType {
    Json,
    Xml,
}

impl SchemaMimeType {
    /// As FIT-Connect's destination answer writes it.
    pub fn as_mime(self) -> &'static str {
        match self {
            SchemaMimeType::Json => "application/json",
            SchemaMimeType::Xml => "application/xml",
        }
    }
}

/// Where pforte announces new submissions to the Fachverfahren (HMAC-SHA512 signed).
#[derive(Debug, Clone)]
pub struct DestinationCallback {
    pub url: HttpUrl,
    pub secret: SecretString,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DestinationFile {
    tenant: String,
    status: DestinationStatus,
    subscriber_client: String,
    services: Vec<ServiceFile>,
    #[serde(default = "default_metadata_versions")]
    metadata_versions: Vec<String>,
    #[serde(default)]
    reply_channels: Vec<String>,
    callback: Option<CallbackFile>,
    encryption_kid: String,
    /// A JWKS file, relative to the destination file's folder.
    jwks_file: Option<String>,
    /// The JWKS inline, as JSON text.
    jwks: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    identifier: String,
    #[serde(default)]
    regions: Vec<String>,
    submission_schemas: Vec<SchemaFile>,
    #[serde(default)]
    fee_required: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    schema_uri: String,
    mime_type: SchemaMimeType,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackFile {
    url: String,
    secret: SecretRef,
}

fn default_metadata_versions() -> Vec<String> {
    vec!["1.0.0".to_owned()]
}

/// Checks one destination file. `anchors` are the configured trust anchors of the `x5c` chains.
pub(crate) fn parse(
    file: EntityFile<DestinationFile>,
    check: &mut FileCheck<'_>,
    anchors: &TrustAnchors,
) -> Option<Destination> {
    let EntityFile { id, source, contents: f, .. } = file;
    let id = match uuid::Uuid::parse_str(id.as_str()) {
        Ok(uuid) if uuid.hyphenated().to_string() == id.as_str() => Some(id),
        _ => {
            check.problem("", "the file name is the destinationId and must be a UUID in lower case with hyphens");
            None
        }
    };
    let tenant = check.entity_id("tenant", &f.tenant);
    let subscriber_client = check.entity_id("subscriber_client", &f.subscriber_client);
    let services = services(check, &f.services);
    let metadata_versions = metadata_versions(check, f.metadata_versions);
    let reply_channels = reply_channels(check, f.reply_channels);
    let callback = match &f.callback {
        Some(callback) => {
            let url = check.service_url("callback.url", &callback.url);
            let secret = check.secret("callback.secret", &callback.secret).and_then(|secret| {
                // FIT-Connect's bounds on a callback secret.
                let len = secrecy::ExposeSecret::expose_secret(&secret).chars().count();
                if (32..=512).contains(&len) {
                    Some(secret)
                } else {
                    check.problem("callback.secret", "must have 32 to 512 characters");
                    None
                }
            });
            // Not `url?`: an early return here would skip the key checks below and their problems.
            match (url, secret) {
                (Some(url), Some(secret)) => Some(Some(DestinationCallback { url, secret })),
                _ => None,
            }
        }
        None => Some(None),
    };
    let keys = jwks_text(check, &source, f.jwks_file.as_deref(), f.jwks.as_deref())
        .and_then(|text| check_jwks(check, &text, anchors));
    let encryption_kid = match &keys {
        Some(keys) => encryption_kid(check, &f.encryption_kid, keys),
        None => None,
    };
    Some(Destination {
        id: id?,
        tenant: tenant?,
        status: f.status,
        services: services?,
        metadata_versions: metadata_versions?,
        reply_channels: reply_channels?,
        subscriber_client: subscriber_client?,
        callback: callback?,
        encryption_kid: encryption_kid?,
        keys: keys?,
    })
}

fn services(check: &mut FileCheck<'_>, files: &[ServiceFile]) -> Option<Vec<DestinationService>> {
    if files.is_empty() {
        check.problem("services", "must list at least one service");
        return None;
    }
    let mut valid = true;
    let mut services = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let key = format!("services[{index}]");
        if !is_leika_urn(&file.identifier) {
            check.problem(
                format!("{key}.identifier"),
                format!("`{}` is not a LeiKa identifier (urn:de:fim:leika:leistung:<digits>)", file.identifier),
            );
            valid = false;
        }
        for (r, region) in file.regions.iter().enumerate() {
            let digits = region.strip_prefix("DE").unwrap_or("x");
            if digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                check.problem(format!("{key}.regions[{r}]"), format!("`{region}` is not DE and up to 12 digits"));
                valid = false;
            }
        }
        if file.submission_schemas.is_empty() {
            check.problem(format!("{key}.submission_schemas"), "must list at least one schema");
            valid = false;
        }
        let mut schemas = Vec::new();
        for (s, schema) in file.submission_schemas.iter().enumerate() {
            match url::Url::parse(&schema.schema_uri) {
                Ok(_) => schemas
                    .push(SubmissionSchema { schema_uri: schema.schema_uri.clone(), mime_type: schema.mime_type }),
                Err(e) => {
                    check.problem(format!("{key}.submission_schemas[{s}].schema_uri"), format!("is not a URI: {e}"));
                    valid = false;
                }
            }
        }
        services.push(DestinationService {
            identifier: file.identifier.clone(),
            regions: file.regions.clone(),
            submission_schemas: schemas,
            fee_required: file.fee_required,
        });
    }
    valid.then_some(services)
}

pub(crate) fn is_leika_urn(text: &str) -> bool {
    text.strip_prefix("urn:de:fim:leika:leistung:")
        .is_some_and(|digits| !digits.is_empty() && digits.len() <= 14 && digits.bytes().all(|b| b.is_ascii_digit()))
}

fn metadata_versions(check: &mut FileCheck<'_>, versions: Vec<String>) -> Option<Vec<String>> {
    if versions.is_empty() {
        check.problem("metadata_versions", "must list at least one version");
        return None;
    }
    match versions.iter().find(|v| !METADATA_VERSIONS.contains(&v.as_str())) {
        Some(unknown) => {
            check.problem(
                "metadata_versions",
                format!("`{unknown}` is not a known version ({})", METADATA_VERSIONS.join(", ")),
            );
            None
        }
        None => Some(versions),
    }
}

fn reply_channels(check: &mut FileCheck<'_>, channels: Vec<String>) -> Option<Vec<String>> {
    match channels.iter().find(|c| !REPLY_CHANNELS.contains(&c.as_str())) {
        Some(unknown) => {
            check.problem("reply_channels", format!("`{unknown}` is not one of {}", REPLY_CHANNELS.join(", ")));
            None
        }
        None => Some(channels),
    }
}

/// The JWKS text from `jwks_file` (relative to the destination file) or `jwks`, exactly one of them.
fn jwks_text(check: &mut FileCheck<'_>, source: &str, file: Option<&str>, inline: Option<&str>) -> Option<String> {
    match (file, inline) {
        (Some(file), None) => {
            let dir = Path::new(source).parent().unwrap_or(Path::new("."));
            let path = dir.join(file);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    check.depends_on("jwks_file", text.as_bytes());
                    Some(text)
                }
                Err(e) => {
                    check.problem("jwks_file", format!("cannot read {}: {e}", path.display()));
                    None
                }
            }
        }
        (None, Some(text)) => Some(text.to_owned()),
        (Some(_), Some(_)) => {
            check.problem("jwks", "give either jwks_file or jwks, not both");
            None
        }
        (None, None) => {
            check.problem("jwks_file", "the Fachverfahren's public keys are required: jwks_file or jwks");
            None
        }
    }
}

fn encryption_kid(check: &mut FileCheck<'_>, kid: &str, keys: &[DestinationKey]) -> Option<String> {
    if kid.is_empty() || kid.len() > MAX_KID_LEN {
        check.problem("encryption_kid", format!("must have 1 to {MAX_KID_LEN} characters"));
        return None;
    }
    match keys.iter().find(|key| key.kid == kid) {
        Some(key) if key.key_use == KeyUse::Encryption => Some(kid.to_owned()),
        Some(_) => {
            check.problem("encryption_kid", format!("`{kid}` is a signing key, not an encryption key"));
            None
        }
        None => {
            check.problem("encryption_kid", format!("no key in the JWKS has the kid `{kid}`"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leika_identifiers_are_urns_with_digits() {
        assert!(is_leika_urn("urn:de:fim:leika:leistung:99123456760610"));
        assert!(!is_leika_urn("urn:de:fim:leika:leistung:"));
        assert!(!is_leika_urn("urn:de:fim:leika:leistung:9912a"));
        assert!(!is_leika_urn("urn:de:fim:leika:leistung:991234567606101"));
        assert!(!is_leika_urn("99123456760610"));
    }
}
