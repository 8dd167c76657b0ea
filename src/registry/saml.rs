//! The `[saml]` table of an identity provider file with `kind = "saml"`: the IdP's metadata (a file read
//! now, or a URL fetched and refreshed by the upstream relying party), pforte's own service provider
//! identity (entityID, signing and decryption keys and certificates, as secret references), the
//! attribute that identifies a person, and BundID's `akdb:AuthenticationRequest` extension.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::check::FileCheck;
use super::saml_metadata::IdpMetadata;
use super::types::{join_key, HttpUrl};
use crate::crypto::secret::SecretRef;

/// BSI TR-02102-1: RSA keys of at least 3072 bits for signatures and key transport.
const MIN_RSA_BITS: u32 = 3072;

/// The login methods BundID's `akdb:AuthnMethods` knows (interface description, version 2).
const AKDB_AUTHN_METHODS: &[&str] = &["Authega", "Benutzername", "Diia", "eID", "eIDAS", "Elster", "FINK"];

/// A SAML 2.0 upstream identity provider, as pforte's service provider towards it.
#[derive(Clone)]
pub struct SamlUpstream {
    pub metadata: MetadataSource,
    /// How long fetched metadata is used before it is fetched again.
    pub metadata_refresh: Duration,
    /// pforte's entityID at this IdP: the `Issuer` of its requests and the only `Audience` accepted.
    pub entity_id: String,
    /// How AuthnRequests reach the IdP; only HTTP-Redirect so far.
    pub binding: RequestBinding,
    /// PEM private key (RSA) that signs AuthnRequests and LogoutRequests.
    pub signing_key: SecretString,
    /// PEM certificate of `signing_key`, published in pforte's metadata.
    pub signing_certificate: String,
    /// PEM private key (RSA) the IdP encrypts assertions to.
    pub decryption_key: SecretString,
    /// PEM certificate of `decryption_key`, published in pforte's metadata.
    pub decryption_certificate: String,
    /// The attribute `Name` whose value identifies the person at this IdP (BundID: bPK2). pforte's
    /// pairwise `sub` is derived from it; a login without it is refused.
    pub subject_attribute: String,
    /// The attribute `Name` that states the level (BundID: `EID-CITIZEN-QAA-LEVEL`), read through
    /// `[levels]` besides `AuthnContextClassRef`; where both name a level, the lower counts.
    pub level_attribute: Option<String>,
    pub akdb: Option<AkdbExtension>,
}

impl std::fmt::Debug for SamlUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlUpstream")
            .field("metadata", &self.metadata)
            .field("entity_id", &self.entity_id)
            .field("subject_attribute", &self.subject_attribute)
            .finish_non_exhaustive()
    }
}

/// Where the IdP's metadata comes from.
#[derive(Debug, Clone)]
pub enum MetadataSource {
    /// Read from a file when the registry loaded (a reload reads it again).
    File(Box<IdpMetadata>),
    /// Fetched by the upstream relying party, refreshed after `metadata_refresh`.
    Url(HttpUrl),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBinding {
    Redirect,
}

/// BundID's `akdb:AuthenticationRequest` (version 2) in the AuthnRequest's `samlp:Extensions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkdbExtension {
    pub online_service_id: String,
    pub organization_display_name: String,
    pub lang: String,
    pub back_url: Option<HttpUrl>,
    /// The login methods the person may use (empty: BundID's default).
    pub authn_methods: Vec<String>,
    /// Attribute `Name` → whether the login fails without it.
    pub requested_attributes: BTreeMap<String, bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SamlFile {
    metadata_file: Option<String>,
    metadata_url: Option<String>,
    #[serde(default = "default_metadata_refresh_secs")]
    metadata_refresh_secs: u64,
    entity_id: String,
    #[serde(default = "default_binding")]
    binding: String,
    signing_key: SecretRef,
    signing_certificate: SecretRef,
    decryption_key: SecretRef,
    decryption_certificate: SecretRef,
    subject_attribute: String,
    level_attribute: Option<String>,
    akdb: Option<AkdbFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AkdbFile {
    online_service_id: String,
    organization_display_name: String,
    #[serde(default = "default_lang")]
    lang: String,
    back_url: Option<String>,
    #[serde(default)]
    authn_methods: Vec<String>,
    #[serde(default)]
    requested_attributes: BTreeMap<String, Requirement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Requirement {
    Required,
    Optional,
}

fn default_metadata_refresh_secs() -> u64 {
    3600
}

fn default_binding() -> String {
    "redirect".to_owned()
}

fn default_lang() -> String {
    "de".to_owned()
}

/// Checks the `[saml]` table; `dir` is the directory of the provider file, against which a relative
/// `metadata_file` is read.
pub(crate) fn parse(f: &SamlFile, dir: &Path, check: &mut FileCheck<'_>) -> Option<SamlUpstream> {
    let metadata = metadata_source(f, dir, check);
    let metadata_refresh = check.positive_secs("saml.metadata_refresh_secs", f.metadata_refresh_secs);
    let entity_id = entity_id(&f.entity_id, check);
    let binding = match f.binding.as_str() {
        "redirect" => Some(RequestBinding::Redirect),
        other => {
            check.problem("saml.binding", format!("`{other}` is not supported; use \"redirect\" (HTTP-Redirect)"));
            None
        }
    };
    let signing =
        key_pair("saml.signing_key", &f.signing_key, "saml.signing_certificate", &f.signing_certificate, check);
    let decryption = key_pair(
        "saml.decryption_key",
        &f.decryption_key,
        "saml.decryption_certificate",
        &f.decryption_certificate,
        check,
    );
    let subject_attribute = check.non_empty("saml.subject_attribute", &f.subject_attribute);
    let level_attribute = f.level_attribute.as_ref().map(|name| check.non_empty("saml.level_attribute", name));
    let akdb = match &f.akdb {
        Some(akdb) => Some(akdb_extension(akdb, &f.subject_attribute, check)?),
        None => None,
    };
    let (signing_key, signing_certificate) = signing?;
    let (decryption_key, decryption_certificate) = decryption?;
    Some(SamlUpstream {
        metadata: metadata?,
        metadata_refresh: metadata_refresh?,
        entity_id: entity_id?,
        binding: binding?,
        signing_key,
        signing_certificate,
        decryption_key,
        decryption_certificate,
        subject_attribute: subject_attribute?,
        level_attribute: level_attribute.map(|name| name.ok_or(())).transpose().ok()?,
        akdb,
    })
}

fn metadata_source(f: &SamlFile, dir: &Path, check: &mut FileCheck<'_>) -> Option<MetadataSource> {
    match (&f.metadata_file, &f.metadata_url) {
        (Some(file), None) => {
            let path = dir.join(file);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    check.problem("saml.metadata_file", format!("cannot read {}: {e}", path.display()));
                    return None;
                }
            };
            check.depends_on("saml.metadata_file", text.as_bytes());
            let parsed = IdpMetadata::parse(&text).map_err(|reason| format!("{} {reason}", path.display()));
            check.accept("saml.metadata_file", parsed).map(|m| MetadataSource::File(Box::new(m)))
        }
        (None, Some(url)) => {
            let url = check.http_url("saml.metadata_url", url)?;
            if !check.context.dev_simulators && url.as_str().starts_with(&check.context.dev_prefix()) {
                check.problem("saml.metadata_url", "points at a development simulator, and dev.simulators is off");
                return None;
            }
            Some(MetadataSource::Url(url))
        }
        (Some(_), Some(_)) => {
            check.problem("saml.metadata_url", "give either metadata_file or metadata_url, not both");
            None
        }
        (None, None) => {
            check.problem("saml.metadata_file", "the IdP's metadata is required: metadata_file or metadata_url");
            None
        }
    }
}

fn entity_id(written: &str, check: &mut FileCheck<'_>) -> Option<String> {
    let expanded = written.replace(super::check::PUBLIC_URL_PLACEHOLDER, &check.context.public_url);
    match url::Url::parse(&expanded) {
        Ok(_) if expanded.len() <= 1024 => Some(expanded),
        Ok(_) => {
            check.problem("saml.entity_id", "is longer than 1024 characters (SAML 2.0 Metadata, section 2.3.2)");
            None
        }
        Err(_) => {
            check.problem("saml.entity_id", "must be an absolute URI, such as {public_url}/saml/<provider id>");
            None
        }
    }
}

/// A private key and its certificate: both readable, RSA of at least [`MIN_RSA_BITS`], and matching.
fn key_pair(
    key_name: &str,
    key_ref: &SecretRef,
    cert_name: &str,
    cert_ref: &SecretRef,
    check: &mut FileCheck<'_>,
) -> Option<(SecretString, String)> {
    let key = check.secret(key_name, key_ref);
    let cert = check.secret(cert_name, cert_ref);
    let parsed_key = key.as_ref().and_then(|key| {
        let parsed = rsa_private_key(key.expose_secret());
        check.accept(key_name, parsed)
    });
    let parsed_cert = cert.as_ref().and_then(|cert| {
        let parsed = X509::from_pem(cert.expose_secret().as_bytes())
            .map_err(|_| "must be a PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
        check.accept(cert_name, parsed)
    });
    let (parsed_key, parsed_cert) = (parsed_key?, parsed_cert?);
    let matches = parsed_cert.public_key().is_ok_and(|public| public.public_eq(&parsed_key));
    if !matches {
        check.problem(cert_name, format!("does not belong to the private key in {key_name}"));
        return None;
    }
    Some((key?, cert?.expose_secret().to_owned()))
}

/// Reads a PEM RSA private key of at least [`MIN_RSA_BITS`] bits.
pub fn rsa_private_key(pem: &str) -> Result<PKey<Private>, String> {
    let key = PKey::private_key_from_pem(pem.as_bytes())
        .map_err(|_| "must be a PEM private key (-----BEGIN PRIVATE KEY-----)".to_owned())?;
    let rsa = key.rsa().map_err(|_| "must be an RSA key (XML Encryption's RSA-OAEP needs one)".to_owned())?;
    if rsa.size() * 8 < MIN_RSA_BITS {
        return Err(format!("is an RSA key of {} bits; at least {MIN_RSA_BITS} are required", rsa.size() * 8));
    }
    Ok(key)
}

fn akdb_extension(akdb: &AkdbFile, subject_attribute: &str, check: &mut FileCheck<'_>) -> Option<AkdbExtension> {
    let online_service_id = check.non_empty("saml.akdb.online_service_id", &akdb.online_service_id);
    let organization_display_name =
        check.non_empty("saml.akdb.organization_display_name", &akdb.organization_display_name);
    let lang_ok = akdb.lang.len() == 2 && akdb.lang.chars().all(|c| c.is_ascii_lowercase());
    if !lang_ok {
        check.problem("saml.akdb.lang", "must be a two-letter language code such as \"de\" or \"en\"");
    }
    let back_url = match &akdb.back_url {
        Some(url) => Some(check.http_url("saml.akdb.back_url", url)?),
        None => None,
    };
    let mut valid = lang_ok;
    for (index, method) in akdb.authn_methods.iter().enumerate() {
        if !AKDB_AUTHN_METHODS.contains(&method.as_str()) {
            let known = AKDB_AUTHN_METHODS.join(", ");
            check.problem(format!("saml.akdb.authn_methods[{index}]"), format!("`{method}` is not one of {known}"));
            valid = false;
        }
    }
    for name in akdb.requested_attributes.keys() {
        if name.trim().is_empty() || name.contains(char::is_whitespace) {
            check.problem(join_key("saml.akdb.requested_attributes", name), "an attribute Name has no spaces");
            valid = false;
        }
    }
    // The login is refused without the identifying attribute; asking for it as optional would let
    // the person withhold it and fail later, with a worse message.
    if akdb.requested_attributes.get(subject_attribute) != Some(&Requirement::Required) {
        check.problem(
            "saml.akdb.requested_attributes",
            format!("must request the subject_attribute `{subject_attribute}` as \"required\""),
        );
        valid = false;
    }
    let requested_attributes =
        akdb.requested_attributes.iter().map(|(name, need)| (name.clone(), *need == Requirement::Required)).collect();
    let (online_service_id, organization_display_name) = (online_service_id?, organization_display_name?);
    valid.then(|| AkdbExtension {
        online_service_id,
        organization_display_name,
        lang: akdb.lang.clone(),
        back_url,
        authn_methods: akdb.authn_methods.clone(),
        requested_attributes,
    })
}

#[cfg(test)]
mod tests {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::rsa::Rsa;
    use openssl::x509::X509NameBuilder;

    use super::*;
    use crate::config::{Problems, RegistrySettings};
    use crate::registry::Registry;

    const ENTRY: &str = r#"
kind = "saml"
display_name = "BundID"
account_type = "person"

[levels]
STORK-QAA-Level-3 = "substantial"

[saml]
metadata_file = "idp.xml"
entity_id = "{public_url}/saml/bundid"
signing_key = "file:{dir}/sp.key"
signing_certificate = "file:{dir}/sp.crt"
decryption_key = "file:{dir}/sp.key"
decryption_certificate = "file:{dir}/sp.crt"
subject_attribute = "urn:oid:bpk2"

[saml.akdb]
online_service_id = "service-1"
organization_display_name = "Stadt Musterstadt"
authn_methods = ["eID"]

[saml.akdb.requested_attributes]
"urn:oid:bpk2" = "required"
"#;

    fn key_and_cert(bits: u32) -> (String, String) {
        let key = PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "sp.test").unwrap();
        let name = name.build();
        let mut cert = X509::builder().unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        (key_pem, String::from_utf8(cert.build().to_pem().unwrap()).unwrap())
    }

    fn metadata(cert_pem: &str) -> String {
        let der = X509::from_pem(cert_pem.as_bytes()).unwrap().to_der().unwrap();
        let cert = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.test"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.test/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
        )
    }

    /// Loads a registry whose only entity is the SAML provider `entry` (with `{dir}` filled in),
    /// the IdP metadata `idp_xml` beside it and `key`/`cert` as pforte's key pair.
    fn load(entry: &str, idp_xml: &str, key: &str, cert: &str) -> Result<Registry, Problems> {
        load_with(entry, idp_xml, key, cert, &[])
    }

    /// [`load`] with more registry files (relative path, contents).
    fn load_with(
        entry: &str,
        idp_xml: &str,
        key: &str,
        cert: &str,
        files: &[(&str, &str)],
    ) -> Result<Registry, Problems> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, contents) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        for folder in ["providers/identity", "clients", "tenants"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        std::fs::write(root.join("sp.key"), key).unwrap();
        std::fs::write(root.join("sp.crt"), cert).unwrap();
        std::fs::write(root.join("providers/identity/idp.xml"), idp_xml).unwrap();
        let entry = entry.replace("{dir}", &root.display().to_string());
        std::fs::write(root.join("providers/identity/bundid.toml"), entry).unwrap();
        let settings = RegistrySettings {
            providers: root.join("providers"),
            clients: root.join("clients"),
            tenants: root.join("tenants"),
        };
        Registry::load(&settings, &url::Url::parse("http://localhost:8080").unwrap(), true)
    }

    fn problems(result: Result<Registry, Problems>) -> Vec<(String, String)> {
        match result {
            Ok(_) => Vec::new(),
            Err(problems) => problems.0.into_iter().map(|p| (p.key, p.reason)).collect(),
        }
    }

    fn has(problems: &[(String, String)], key: &str, reason_part: &str) -> bool {
        problems.iter().any(|(k, reason)| k == key && reason.contains(reason_part))
    }

    #[test]
    fn a_valid_saml_entry_loads_with_its_pinned_metadata_and_extension() {
        let (key, cert) = key_and_cert(3072);
        let registry = load(ENTRY, &metadata(&cert), &key, &cert).unwrap();
        let saml = registry.identity_provider("bundid").and_then(|idp| idp.saml()).unwrap();
        assert_eq!(saml.entity_id, "http://localhost:8080/saml/bundid");
        let MetadataSource::File(metadata) = &saml.metadata else { panic!("metadata from the file") };
        assert_eq!(metadata.entity_id, "https://idp.test");
        assert_eq!(metadata.signing_certificates.len(), 1);
        let akdb = saml.akdb.as_ref().unwrap();
        assert_eq!(akdb.requested_attributes.get("urn:oid:bpk2"), Some(&true));
    }

    #[test]
    fn each_wrong_saml_setting_is_named_by_its_key() {
        let (key, cert) = key_and_cert(3072);
        let (_, other_cert) = key_and_cert(3072);
        let entry = ENTRY
            .replace("kind = \"saml\"", "kind = \"saml\"\nissuer = \"https://id.example\"")
            .replace("entity_id = \"{public_url}/saml/bundid\"", "entity_id = \"not a uri\"")
            .replace("authn_methods = [\"eID\"]", "authn_methods = [\"eID\", \"Fax\"]")
            .replace("\"urn:oid:bpk2\" = \"required\"", "\"urn:oid:bpk2\" = \"optional\"")
            .replace(
                "subject_attribute = \"urn:oid:bpk2\"",
                "subject_attribute = \"urn:oid:bpk2\"\nlevel_attribute = \" \"",
            );
        // pforte's certificate file holds another key's certificate.
        let found = problems(load(&entry, &metadata(&cert), &key, &other_cert));
        assert!(has(&found, "issuer", "not used with kind \"saml\""), "{found:?}");
        assert!(has(&found, "saml.entity_id", "absolute URI"), "{found:?}");
        assert!(has(&found, "saml.akdb.authn_methods[1]", "`Fax`"), "{found:?}");
        assert!(has(&found, "saml.akdb.requested_attributes", "as \"required\""), "{found:?}");
        assert!(has(&found, "saml.signing_certificate", "does not belong to the private key"), "{found:?}");
        assert!(found.iter().any(|(key, _)| key == "saml.level_attribute"), "{found:?}");
    }

    #[test]
    fn a_weak_key_or_unusable_metadata_is_refused() {
        let (weak_key, weak_cert) = key_and_cert(2048);
        let found = problems(load(ENTRY, &metadata(&weak_cert), &weak_key, &weak_cert));
        assert!(has(&found, "saml.signing_key", "at least 3072"), "{found:?}");
        let (key, cert) = key_and_cert(3072);
        let with_dtd = format!("<!DOCTYPE x [<!ENTITY e \"x\">]>{}", metadata(&cert));
        assert!(has(&problems(load(ENTRY, &with_dtd, &key, &cert)), "saml.metadata_file", "DTD"));
        let no_cert = metadata(&cert).replace("use=\"signing\"", "use=\"encryption\"");
        assert!(has(&problems(load(ENTRY, &no_cert, &key, &cert)), "saml.metadata_file", "no signing certificate"));
    }

    #[test]
    fn a_saml_entry_without_its_table_is_named() {
        let entry = ENTRY.split("[saml]").next().unwrap();
        let found = problems(load(entry, "", "", ""));
        assert!(has(&found, "saml", "required with kind \"saml\""), "{found:?}");
    }

    #[test]
    fn a_saml_provider_cannot_be_the_finance_staff_sign_in() {
        let (key, cert) = key_and_cert(3072);
        let payment = "kind = \"simulator\"\ndisplay_name = \"Pay\"\nbase_url = \"http://localhost:8080/dev/pay\"\n";
        let tenant = "display_name = \"Town\"\n[payment]\nprovider = \"pay\"\n[finance.staff]\nprovider = \"bundid\"\nclaim = \"given_name\"\nvalue = \"x\"\n";
        let entry = ENTRY.replace("[levels]", "[claims]\n\"urn:oid:2.5.4.42\" = \"given_name\"\n\n[levels]");
        let files = [("providers/payment/pay.toml", payment), ("tenants/12345678.toml", tenant)];
        let found = problems(load_with(&entry, &metadata(&cert), &key, &cert, &files));
        assert!(has(&found, "finance.staff.provider", "over OpenID Connect only"), "{found:?}");
    }
}
