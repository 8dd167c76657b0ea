//! Online services (`<clients>/<id>.toml`): the relying parties that log citizens and companies in
//! through pforte and create payments through its XBezahldienste API.

use std::collections::BTreeSet;

use secrecy::SecretString;
use serde::Deserialize;

use super::check::FileCheck;
use super::files::EntityFile;
use super::types::{ClientAuthMethod, EntityId, HttpUrl, Level, RedirectUri};
use crate::crypto::secret::SecretRef;

#[derive(Debug, Clone)]
pub struct Client {
    pub id: EntityId,
    pub display_name: String,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub auth: ClientAuth,
    /// The upstream providers this service may send its users to; checked to exist.
    pub identity_providers: Vec<EntityId>,
    pub scopes: BTreeSet<Scope>,
    pub min_level: Level,
    pub grant_types: BTreeSet<GrantType>,
    pub require_par: bool,
    pub id_token_alg: IdTokenAlg,
    /// Pairwise subjects are derived per sector, so services sharing a sector see the same `sub`.
    pub sector: String,
    /// The XBezahldienste `originatorId` under which this service creates payments; unique.
    pub originator_id: Option<EntityId>,
    /// The authorities this service may create payments for; checked to exist.
    pub tenants: Vec<EntityId>,
    pub notification_url: Option<HttpUrl>,
    /// Signs notifications (Standard Webhooks, `whsec_…`); required with `notification_url`.
    pub notification_secret: Option<SecretString>,
}

impl Client {
    /// Whether a redirect URI from an authorization request is one of the registered ones, exactly.
    pub fn allows_redirect_uri(&self, requested: &str) -> bool {
        self.redirect_uris.iter().any(|uri| uri.matches(requested))
    }

    pub fn may_act_for(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t.as_str() == tenant)
    }
}

/// How the service authenticates at pforte's token endpoint.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    ClientSecretBasic { secret: SecretString },
    ClientSecretPost { secret: SecretString },
    PrivateKeyJwt { keys: ClientKeys },
}

/// Where pforte finds the public keys of a `private_key_jwt` client.
#[derive(Debug, Clone)]
pub enum ClientKeys {
    JwksUri(HttpUrl),
    /// A JSON Web Key Set with a non-empty `keys` array of public keys.
    Jwks(serde_json::Map<String, serde_json::Value>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Openid,
    Profile,
    Birth,
    Email,
    Address,
    Postbox,
    Organisation,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Openid => "openid",
            Scope::Profile => "profile",
            Scope::Birth => "birth",
            Scope::Email => "email",
            Scope::Address => "address",
            Scope::Postbox => "postbox",
            Scope::Organisation => "organisation",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    RefreshToken,
}

/// Signature algorithm of the ID tokens pforte issues to this service; never `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum IdTokenAlg {
    #[default]
    ES256,
    PS256,
    RS256,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientFile {
    display_name: String,
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    auth: AuthFile,
    identity_providers: Vec<String>,
    scopes: Vec<Scope>,
    #[serde(default)]
    min_level: Level,
    #[serde(default = "default_grant_types")]
    grant_types: Vec<GrantType>,
    #[serde(default)]
    require_par: bool,
    #[serde(default)]
    id_token_alg: IdTokenAlg,
    sector: Option<String>,
    originator_id: Option<String>,
    #[serde(default)]
    tenants: Vec<String>,
    notification_url: Option<String>,
    notification_secret: Option<SecretRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    method: ClientAuthMethod,
    secret: Option<SecretRef>,
    jwks_uri: Option<String>,
    /// A JSON string or a TOML table.
    jwks: Option<toml::Value>,
}

fn default_grant_types() -> Vec<GrantType> {
    vec![GrantType::AuthorizationCode]
}

pub(crate) fn parse(file: EntityFile<ClientFile>, check: &mut FileCheck<'_>) -> Option<Client> {
    let EntityFile { id, contents: f, .. } = file;
    let display_name = check.non_empty("display_name", &f.display_name);
    let redirect_uris = parse_redirect_uris(check, "redirect_uris", &f.redirect_uris)
        .and_then(|l| not_empty(check, "redirect_uris", l));
    let post_logout_redirect_uris =
        parse_redirect_uris(check, "post_logout_redirect_uris", &f.post_logout_redirect_uris);
    let auth = auth(&f.auth, check);
    let identity_providers = parse_ids(check, "identity_providers", &f.identity_providers)
        .and_then(|l| not_empty(check, "identity_providers", l));
    let scopes = f.scopes.contains(&Scope::Openid).then(|| f.scopes.iter().copied().collect());
    if scopes.is_none() {
        check.problem("scopes", "must include \"openid\"");
    }
    let grant_types = not_empty(check, "grant_types", f.grant_types).map(|l| l.into_iter().collect());
    let sector = match &f.sector {
        Some(sector) if sector.trim().is_empty() || sector.contains(char::is_whitespace) => {
            check.problem("sector", "must be one non-empty word without spaces");
            None
        }
        Some(sector) => Some(sector.clone()),
        None => Some(id.as_str().to_owned()),
    };
    let originator_id = match f.originator_id.as_deref() {
        Some(originator_id) => check.entity_id("originator_id", originator_id).map(Some),
        None => Some(None),
    };
    let tenants = parse_ids(check, "tenants", &f.tenants);
    let notification_url = match f.notification_url.as_deref() {
        Some(url) => check.service_url("notification_url", url).map(Some),
        None => Some(None),
    };
    let notification_secret = match (&notification_url, &f.notification_secret) {
        (_, Some(reference)) => check.secret("notification_secret", reference).and_then(|secret| {
            match crate::crypto::webhook::WebhookSecret::parse(&secret) {
                Ok(_) => Some(Some(secret)),
                Err(e) => {
                    check.problem("notification_secret", e.to_string());
                    None
                }
            }
        }),
        (Some(Some(_)), None) => {
            check.problem("notification_secret", "is required with notification_url: notifications are signed");
            None
        }
        _ => Some(None),
    };
    Some(Client {
        id,
        display_name: display_name?,
        redirect_uris: redirect_uris?,
        post_logout_redirect_uris: post_logout_redirect_uris?,
        auth: auth?,
        identity_providers: identity_providers?,
        scopes: scopes?,
        min_level: f.min_level,
        grant_types: grant_types?,
        require_par: f.require_par,
        id_token_alg: f.id_token_alg,
        sector: sector?,
        originator_id: originator_id?,
        tenants: tenants?,
        notification_url: notification_url?,
        notification_secret: notification_secret?,
    })
}

fn not_empty<T>(check: &mut FileCheck<'_>, key: &str, list: Vec<T>) -> Option<Vec<T>> {
    if list.is_empty() {
        check.problem(key, "must list at least one entry");
        return None;
    }
    Some(list)
}

fn parse_redirect_uris(check: &mut FileCheck<'_>, key: &str, uris: &[String]) -> Option<Vec<RedirectUri>> {
    let parsed: Vec<_> =
        uris.iter().enumerate().map(|(i, uri)| check.redirect_uri(&format!("{key}[{i}]"), uri)).collect();
    parsed.into_iter().collect()
}

fn parse_ids(check: &mut FileCheck<'_>, key: &str, ids: &[String]) -> Option<Vec<EntityId>> {
    let parsed: Vec<_> = ids.iter().enumerate().map(|(i, id)| check.entity_id(&format!("{key}[{i}]"), id)).collect();
    parsed.into_iter().collect()
}

fn auth(auth: &AuthFile, check: &mut FileCheck<'_>) -> Option<ClientAuth> {
    let with = format!("with method {}", auth.method.as_str());
    match auth.method {
        ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => {
            check.unused("auth.jwks_uri", auth.jwks_uri.as_ref(), &with);
            check.unused("auth.jwks", auth.jwks.as_ref(), &with);
            let secret = check.required_secret("auth.secret", auth.secret.as_ref(), &with)?;
            Some(match auth.method {
                ClientAuthMethod::ClientSecretPost => ClientAuth::ClientSecretPost { secret },
                _ => ClientAuth::ClientSecretBasic { secret },
            })
        }
        ClientAuthMethod::PrivateKeyJwt => {
            check.unused("auth.secret", auth.secret.as_ref(), &with);
            let keys = match (&auth.jwks_uri, &auth.jwks) {
                (Some(uri), None) => ClientKeys::JwksUri(check.service_url("auth.jwks_uri", uri)?),
                (None, Some(jwks)) => ClientKeys::Jwks(check.accept("auth.jwks", parse_jwks(jwks))?),
                (Some(_), Some(_)) => {
                    check.problem("auth.jwks", "give either jwks_uri or jwks, not both");
                    return None;
                }
                (None, None) => {
                    check.problem("auth.jwks_uri", format!("jwks_uri or jwks is required {with}"));
                    return None;
                }
            };
            Some(ClientAuth::PrivateKeyJwt { keys })
        }
    }
}

fn parse_jwks(value: &toml::Value) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let json = match value {
        toml::Value::String(text) => serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))?,
        toml::Value::Table(_) => serde_json::to_value(value).map_err(|e| format!("cannot be read as JSON: {e}"))?,
        _ => return Err("must be a JSON Web Key Set, as a JSON string or a TOML table".to_owned()),
    };
    let serde_json::Value::Object(set) = json else {
        return Err("must be a JSON object with a `keys` array".to_owned());
    };
    let Some(serde_json::Value::Array(keys)) = set.get("keys") else {
        return Err("must have a `keys` array".to_owned());
    };
    if keys.is_empty() {
        return Err("the `keys` array must not be empty".to_owned());
    }
    for (index, key) in keys.iter().enumerate() {
        let Some(key) = key.as_object().filter(|k| k.get("kty").is_some_and(|kty| kty.is_string())) else {
            return Err(format!("keys[{index}] must be a JSON Web Key with a `kty`"));
        };
        // A client registers only what verifies its signatures; a private part here would be a leak.
        if key.contains_key("d") {
            return Err(format!("keys[{index}] contains a private key (`d`); register only the public key"));
        }
    }
    Ok(set)
}
