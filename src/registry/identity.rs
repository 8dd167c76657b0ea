//! Upstream identity providers (`<providers>/identity/<id>.toml`): the account services pforte sends
//! logins to, such as BundID or Mein Unternehmenskonto, each an OpenID Connect provider (`kind = "oidc"`)
//! or a SAML 2.0 identity provider (`kind = "saml"`, its `[saml]` table in `registry::saml`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::check::FileCheck;
use super::files::EntityFile;
use super::saml::{SamlFile, SamlUpstream};
use super::types::{join_key, AccountType, ClientAuthMethod, EntityId, HttpUrl, Level};
use crate::crypto::secret::SecretRef;

/// The claims pforte issues; upstream claims are mapped onto these names.
pub const PFORTE_CLAIMS: &[&str] = &[
    "given_name",
    "family_name",
    "birth_name",
    "title",
    "birthdate",
    "place_of_birth",
    "nationality",
    "email",
    "address",
    "postbox",
    "org_name",
    "org_tax_number",
    "org_vat_id",
    "org_legal_form",
    "org_register_type",
    "org_register_number",
    "org_register_court",
    "org_address",
    // Group memberships from an authority's staff identity provider: read by the finance staff
    // sign-in (a tenant's `finance.staff`), released to online services by no scope.
    "groups",
];

/// The protocol pforte speaks with an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityProviderKind {
    Oidc,
    Saml,
}

#[derive(Debug, Clone)]
pub struct IdentityProvider {
    pub id: EntityId,
    pub display_name: String,
    pub account_type: AccountType,
    /// Upstream claim (OpenID Connect) or attribute `Name` (SAML) → pforte claim name (one of
    /// [`PFORTE_CLAIMS`]).
    pub claims: BTreeMap<String, &'static str>,
    /// Upstream `acr` (OpenID Connect) or `AuthnContextClassRef` (SAML) value → level it proves.
    pub levels: BTreeMap<String, Level>,
    /// Required level → `acr_values` (OpenID Connect) or requested `AuthnContextClassRef` (SAML) to
    /// send upstream.
    pub acr_values: BTreeMap<Level, String>,
    /// The level a login proves when the provider's ID token carries no `acr` (many standard
    /// providers never send one); without it such logins are refused.
    pub level_without_acr: Option<Level>,
    pub protocol: UpstreamProtocol,
}

/// What pforte needs to speak the provider's protocol: one variant per [`IdentityProviderKind`].
#[derive(Debug, Clone)]
pub enum UpstreamProtocol {
    Oidc(OidcUpstream),
    Saml(Box<SamlUpstream>),
}

/// An OpenID Connect provider: discovered from its issuer, pforte registered there as a client.
#[derive(Debug, Clone)]
pub struct OidcUpstream {
    pub issuer: HttpUrl,
    pub client_id: String,
    pub client_auth: UpstreamClientAuth,
    pub scopes: Vec<String>,
    pub discovery_refresh: Duration,
}

impl IdentityProvider {
    pub fn kind(&self) -> IdentityProviderKind {
        match self.protocol {
            UpstreamProtocol::Oidc(_) => IdentityProviderKind::Oidc,
            UpstreamProtocol::Saml(_) => IdentityProviderKind::Saml,
        }
    }

    /// The OpenID Connect settings, for a provider of that kind.
    pub fn oidc(&self) -> Option<&OidcUpstream> {
        match &self.protocol {
            UpstreamProtocol::Oidc(oidc) => Some(oidc),
            UpstreamProtocol::Saml(_) => None,
        }
    }

    /// The SAML settings, for a provider of that kind.
    pub fn saml(&self) -> Option<&SamlUpstream> {
        match &self.protocol {
            UpstreamProtocol::Saml(saml) => Some(saml),
            UpstreamProtocol::Oidc(_) => None,
        }
    }

    /// The level an upstream `acr` proves; `None` for a value pforte does not know, which proves
    /// nothing. An empty `acr` (none sent) proves `level_without_acr`, if the entry sets one.
    pub fn level_of(&self, acr: &str) -> Option<Level> {
        if acr.is_empty() {
            return self.level_without_acr;
        }
        self.levels.get(acr).copied()
    }

    /// The `acr_values` to send when a login needs exactly this level, if the provider has one for it.
    pub fn acr_for(&self, level: Level) -> Option<&str> {
        self.acr_values.get(&level).map(String::as_str)
    }

    /// The highest level any login at this provider can reach.
    pub fn highest_level(&self) -> Option<Level> {
        self.levels.values().copied().chain(self.level_without_acr).max()
    }
}

/// How pforte authenticates at the upstream token endpoint.
#[derive(Debug, Clone)]
pub enum UpstreamClientAuth {
    ClientSecretBasic { secret: SecretString },
    ClientSecretPost { secret: SecretString },
    PrivateKeyJwt { private_key: SecretString },
}

/// One file; the OpenID Connect keys are required with `kind = "oidc"` and refused with `kind = "saml"`,
/// which needs the `[saml]` table instead.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityProviderFile {
    kind: IdentityProviderKind,
    display_name: String,
    account_type: AccountType,
    issuer: Option<String>,
    client_id: Option<String>,
    client_auth: Option<ClientAuthFile>,
    scopes: Option<Vec<String>>,
    #[serde(default)]
    claims: BTreeMap<String, String>,
    levels: BTreeMap<String, Level>,
    #[serde(default)]
    acr_values: AcrValuesFile,
    discovery_refresh_secs: Option<u64>,
    level_without_acr: Option<Level>,
    saml: Option<SamlFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientAuthFile {
    method: ClientAuthMethod,
    secret: Option<SecretRef>,
    private_key: Option<SecretRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcrValuesFile {
    low: Option<String>,
    substantial: Option<String>,
    high: Option<String>,
}

fn default_discovery_refresh_secs() -> u64 {
    3600
}

pub(crate) fn parse(file: EntityFile<IdentityProviderFile>, check: &mut FileCheck<'_>) -> Option<IdentityProvider> {
    let EntityFile { id, contents: f, source, .. } = file;
    let display_name = check.non_empty("display_name", &f.display_name);
    let protocol = match f.kind {
        IdentityProviderKind::Oidc => {
            check.unused("saml", f.saml.as_ref(), "with kind \"oidc\"");
            oidc(&f, check).map(UpstreamProtocol::Oidc)
        }
        IdentityProviderKind::Saml => {
            let with = "with kind \"saml\" (its settings are in [saml])";
            check.unused("issuer", f.issuer.as_ref(), with);
            check.unused("client_id", f.client_id.as_ref(), with);
            check.unused("client_auth", f.client_auth.as_ref(), with);
            check.unused("scopes", f.scopes.as_ref(), with);
            check.unused("discovery_refresh_secs", f.discovery_refresh_secs.as_ref(), with);
            match &f.saml {
                Some(saml) => {
                    let dir = Path::new(&source).parent().unwrap_or(Path::new("."));
                    super::saml::parse(saml, dir, check).map(|saml| UpstreamProtocol::Saml(Box::new(saml)))
                }
                None => {
                    check.problem("saml", "the [saml] table is required with kind \"saml\"");
                    None
                }
            }
        }
    };
    let claims = claims(&f.claims, check);
    let levels = levels(f.levels, check);
    let acr_values = acr_values(&f.acr_values, levels.as_ref(), check);
    Some(IdentityProvider {
        id,
        display_name: display_name?,
        account_type: f.account_type,
        claims: claims?,
        levels: levels?,
        acr_values: acr_values?,
        level_without_acr: f.level_without_acr,
        protocol: protocol?,
    })
}

fn oidc(f: &IdentityProviderFile, check: &mut FileCheck<'_>) -> Option<OidcUpstream> {
    let with = "with kind \"oidc\"";
    let issuer = required(check, "issuer", f.issuer.as_ref(), with).and_then(|issuer| check.http_url("issuer", issuer));
    let issuer = issuer.filter(|issuer| {
        let plain_path = issuer.url().query().is_none();
        if !plain_path {
            check.problem("issuer", "must not contain a query (OpenID Connect Discovery, section 4)");
        }
        plain_path
    });
    if let Some(issuer) = &issuer {
        if !check.context.dev_simulators && issuer.as_str().starts_with(&check.context.dev_prefix()) {
            check.problem("issuer", "points at a development simulator, and dev.simulators is off");
        }
    }
    let client_id =
        required(check, "client_id", f.client_id.as_ref(), with).and_then(|id| check.non_empty("client_id", id));
    let client_auth =
        required(check, "client_auth", f.client_auth.as_ref(), with).and_then(|auth| client_auth(auth, check));
    let scopes = required(check, "scopes", f.scopes.as_ref(), with).and_then(|s| scopes(s, check));
    let refresh_secs = f.discovery_refresh_secs.unwrap_or_else(default_discovery_refresh_secs);
    let discovery_refresh = check.positive_secs("discovery_refresh_secs", refresh_secs);
    Some(OidcUpstream {
        issuer: issuer?,
        client_id: client_id?,
        client_auth: client_auth?,
        scopes: scopes?,
        discovery_refresh: discovery_refresh?,
    })
}

fn required<'v, T>(check: &mut FileCheck<'_>, key: &str, value: Option<&'v T>, needed_by: &str) -> Option<&'v T> {
    if value.is_none() {
        check.problem(key, format!("is required {needed_by}"));
    }
    value
}

fn client_auth(auth: &ClientAuthFile, check: &mut FileCheck<'_>) -> Option<UpstreamClientAuth> {
    let with = format!("with method {}", auth.method.as_str());
    match auth.method {
        ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => {
            check.unused("client_auth.private_key", auth.private_key.as_ref(), &with);
            let secret = check.required_secret("client_auth.secret", auth.secret.as_ref(), &with)?;
            Some(match auth.method {
                ClientAuthMethod::ClientSecretPost => UpstreamClientAuth::ClientSecretPost { secret },
                _ => UpstreamClientAuth::ClientSecretBasic { secret },
            })
        }
        ClientAuthMethod::PrivateKeyJwt => {
            check.unused("client_auth.secret", auth.secret.as_ref(), &with);
            let private_key = check.private_key("client_auth.private_key", auth.private_key.as_ref(), &with)?;
            Some(UpstreamClientAuth::PrivateKeyJwt { private_key })
        }
    }
}

fn scopes(scopes: &[String], check: &mut FileCheck<'_>) -> Option<Vec<String>> {
    let mut valid = true;
    for (index, scope) in scopes.iter().enumerate() {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            check.problem(format!("scopes[{index}]"), "a scope is one non-empty word without spaces");
            valid = false;
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        check.problem("scopes", "must include \"openid\"");
        valid = false;
    }
    valid.then(|| scopes.to_vec())
}

fn claims(claims: &BTreeMap<String, String>, check: &mut FileCheck<'_>) -> Option<BTreeMap<String, &'static str>> {
    let mut mapped: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut valid = true;
    for (upstream, pforte) in claims {
        let key = join_key("claims", upstream);
        match PFORTE_CLAIMS.iter().find(|known| **known == pforte.as_str()) {
            Some(known) => {
                if let Some((other, _)) = mapped.iter().find(|(_, p)| *p == known) {
                    check.problem(key, format!("`{pforte}` is already mapped from the upstream claim `{other}`"));
                    valid = false;
                }
                mapped.insert(upstream.clone(), known);
            }
            None => {
                check
                    .problem(key, format!("`{pforte}` is not a pforte claim; use one of {}", PFORTE_CLAIMS.join(", ")));
                valid = false;
            }
        }
    }
    valid.then_some(mapped)
}

fn levels(levels: BTreeMap<String, Level>, check: &mut FileCheck<'_>) -> Option<BTreeMap<String, Level>> {
    if levels.is_empty() {
        // Without a mapping no login proves any level, and every login would be refused.
        check.problem("levels", "must map at least one upstream acr value to a level");
        return None;
    }
    Some(levels)
}

fn acr_values(
    acr: &AcrValuesFile,
    levels: Option<&BTreeMap<String, Level>>,
    check: &mut FileCheck<'_>,
) -> Option<BTreeMap<Level, String>> {
    let mut values = BTreeMap::new();
    let mut valid = true;
    for (level, value) in [(Level::Low, &acr.low), (Level::Substantial, &acr.substantial), (Level::High, &acr.high)] {
        let Some(value) = value else { continue };
        let key = format!("acr_values.{level}");
        if value.trim().is_empty() {
            check.problem(key, "must not be empty");
            valid = false;
            continue;
        }
        // Asking for a value that the provider's own mapping rates lower is a contradiction in the file.
        if let Some(proven) = levels.and_then(|l| l.get(value)).filter(|proven| **proven < level) {
            check.problem(key, format!("`{value}` is mapped to `{proven}` in [levels], which is below {level}"));
            valid = false;
        }
        values.insert(level, value.clone());
    }
    valid.then_some(values)
}
