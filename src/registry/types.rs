//! Values with rules that several registry entity kinds share: ids, levels of assurance, account types and
//! URLs. Each is parsed once when the registry loads, so the rest of pforte never handles the raw strings.

use std::borrow::Borrow;
use std::fmt;

use serde::Deserialize;
use url::Url;

/// The id of a registry entity: its file stem, and for tenants and originators also a path segment of the
/// XBezahldienste API, whose ids are at most 36 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityId(String);

impl EntityId {
    pub const MAX_LEN: usize = 36;

    pub fn parse(raw: &str) -> Result<EntityId, String> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(format!("`{raw}` is not a valid id: an id has 1 to {} characters", Self::MAX_LEN));
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(format!("`{raw}` is not a valid id: use only the letters A-Z and a-z, digits, `_` and `-`"));
        }
        Ok(EntityId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for EntityId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Level of assurance of a login (eIDAS low, substantial, high). Ordered, so "at least" is `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Low,
    Substantial,
    High,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Low, Level::Substantial, Level::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Substantial => "substantial",
            Level::High => "high",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose account an upstream identity provider holds: a citizen's or a company's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    Person,
    Organisation,
}

/// How a party authenticates at a token endpoint (OpenID Connect Core, section 9). Used both for pforte
/// towards upstream identity providers and for online services towards pforte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
            ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// An absolute URL that pforte calls or sends browsers to: https, or plain http only on a loopback host
/// (development). No fragment, and no credentials, which belong in secret references.
///
/// The text is kept as written (after `{public_url}` is filled in) because OpenID Connect compares issuers
/// and redirect URIs as exact strings, and parsing would normalise them (e.g. add a trailing slash).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl {
    written: String,
    url: Url,
}

impl HttpUrl {
    pub fn parse(written: &str) -> Result<HttpUrl, String> {
        let url = Url::parse(written).map_err(|e| format!("`{written}` is not a valid absolute URL: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if crate::config::is_loopback_url(&url) => {}
            "http" => {
                return Err(format!(
                    "`{written}` must use https; plain http is allowed only on a loopback host \
                     (localhost, 127.0.0.0/8, ::1)"
                ))
            }
            other => return Err(format!("`{written}` must be an https URL, not {other}:")),
        }
        if url.fragment().is_some() {
            return Err(format!("`{written}` must not contain a fragment (#...)"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("`{written}` must not contain credentials; use a secret reference instead"));
        }
        Ok(HttpUrl { written: written.to_owned(), url })
    }

    /// The URL as written in the registry file, for exact comparisons.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.written)
    }
}

/// A registered redirect URI of an online service. Authorization requests must name one of them exactly
/// (simple string comparison, as OAuth 2.0 Security BCP requires), so there is no normalising `==`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedirectUri(HttpUrl);

impl RedirectUri {
    pub fn parse(written: &str) -> Result<RedirectUri, String> {
        HttpUrl::parse(written).map(RedirectUri)
    }

    /// Whether a redirect URI from a request is exactly this registered one.
    pub fn matches(&self, requested: &str) -> bool {
        self.0.as_str() == requested
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        self.0.url()
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Appends a key to a dotted key path, quoting it the way TOML would when it is not a bare key
/// (e.g. `levels."http://eidas.europa.eu/LoA/high"`).
pub(crate) fn join_key(parent: &str, key: &str) -> String {
    let bare = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare { key.to_owned() } else { format!("{key:?}") };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}
