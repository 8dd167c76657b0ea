//! Payment provider instances (`<providers>/payment/<id>.toml`). The kinds pforte can talk to are a
//! closed set in code; each file is one configured instance of a kind, with its address and credentials.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::check::FileCheck;
use super::files::EntityFile;
use super::settlement::{self, SettlementFile, SettlementFormat};
use super::types::{EntityId, HttpUrl};
use crate::crypto::secret::SecretRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentProviderKind {
    /// A provider speaking XBezahldienste (e.g. ePay21, a connector in front of ePayBL).
    XBezahldienste,
    /// pmPayment's legacy form interface, signed with an HMAC.
    PmPayment,
    /// pforte's own pay page for development.
    Simulator,
}

impl PaymentProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentProviderKind::XBezahldienste => "xbezahldienste",
            PaymentProviderKind::PmPayment => "pmpayment",
            PaymentProviderKind::Simulator => "simulator",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PaymentProvider {
    pub id: EntityId,
    pub kind: PaymentProviderKind,
    pub display_name: String,
    pub base_url: HttpUrl,
    pub auth: PaymentAuth,
    pub timeout: Duration,
    /// Signs pmPayment requests; present exactly for that kind.
    pub hmac_key: Option<SecretString>,
    /// How this provider's settlement report reads; without it its reports cannot be imported.
    pub settlement: Option<SettlementFormat>,
}

/// How pforte authenticates at the provider; the standard leaves it open and providers differ.
#[derive(Debug, Clone)]
pub enum PaymentAuth {
    None,
    Basic {
        username: String,
        password: SecretString,
    },
    OAuth2ClientCredentials {
        token_url: HttpUrl,
        client_id: String,
        client_secret: SecretString,
        scope: Option<String>,
    },
    /// Mutual TLS. The certificate is public but is read through a secret reference like its key.
    ClientCertificate {
        certificate_pem: String,
        private_key: SecretString,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PaymentProviderFile {
    kind: PaymentProviderKind,
    display_name: String,
    base_url: String,
    auth: AuthFile,
    #[serde(default = "default_timeout_secs")]
    timeout_secs: u64,
    hmac_key: Option<SecretRef>,
    settlement: Option<SettlementFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    method: AuthMethod,
    username: Option<String>,
    password: Option<SecretRef>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretRef>,
    scope: Option<String>,
    certificate: Option<SecretRef>,
    private_key: Option<SecretRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AuthMethod {
    None,
    Basic,
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials,
    ClientCertificate,
}

impl AuthMethod {
    fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Basic => "basic",
            AuthMethod::OAuth2ClientCredentials => "oauth2_client_credentials",
            AuthMethod::ClientCertificate => "client_certificate",
        }
    }
}

fn default_timeout_secs() -> u64 {
    10
}

pub(crate) fn parse(file: EntityFile<PaymentProviderFile>, check: &mut FileCheck<'_>) -> Option<PaymentProvider> {
    let EntityFile { id, contents: f, .. } = file;
    if f.kind == PaymentProviderKind::Simulator && !check.context.dev_simulators {
        check.problem("kind", "the simulator is for development only, and dev.simulators is off");
    }
    let display_name = check.non_empty("display_name", &f.display_name);
    let base_url = check.http_url("base_url", &f.base_url);
    let auth = auth(&f.auth, check);
    let timeout = check.positive_secs("timeout_secs", f.timeout_secs);
    let hmac_key = match (f.kind, &f.hmac_key) {
        (PaymentProviderKind::PmPayment, key) => {
            check.required_secret("hmac_key", key.as_ref(), "for kind pmpayment").map(Some)
        }
        (kind, key) => {
            check.unused("hmac_key", key.as_ref(), &format!("by kind {}", kind.as_str()));
            Some(None)
        }
    };
    let settlement = match &f.settlement {
        Some(file) => settlement::parse(file, check).map(Some),
        None => Some(None),
    };
    Some(PaymentProvider {
        id,
        kind: f.kind,
        display_name: display_name?,
        base_url: base_url?,
        auth: auth?,
        timeout: timeout?,
        hmac_key: hmac_key?,
        settlement: settlement?,
    })
}

fn auth(auth: &AuthFile, check: &mut FileCheck<'_>) -> Option<PaymentAuth> {
    let with = format!("with auth method {}", auth.method.as_str());
    let uses = |key: &str| match auth.method {
        AuthMethod::None => false,
        AuthMethod::Basic => matches!(key, "username" | "password"),
        AuthMethod::OAuth2ClientCredentials => matches!(key, "token_url" | "client_id" | "client_secret" | "scope"),
        AuthMethod::ClientCertificate => matches!(key, "certificate" | "private_key"),
    };
    let present: [(&str, bool); 8] = [
        ("username", auth.username.is_some()),
        ("password", auth.password.is_some()),
        ("token_url", auth.token_url.is_some()),
        ("client_id", auth.client_id.is_some()),
        ("client_secret", auth.client_secret.is_some()),
        ("scope", auth.scope.is_some()),
        ("certificate", auth.certificate.is_some()),
        ("private_key", auth.private_key.is_some()),
    ];
    for (key, _) in present.iter().filter(|(key, is_set)| *is_set && !uses(key)) {
        check.problem(format!("auth.{key}"), format!("is not used {with}; remove it"));
    }

    match auth.method {
        AuthMethod::None => Some(PaymentAuth::None),
        AuthMethod::Basic => {
            let username = required_text(check, "auth.username", auth.username.as_deref(), &with);
            let password = check.required_secret("auth.password", auth.password.as_ref(), &with);
            Some(PaymentAuth::Basic { username: username?, password: password? })
        }
        AuthMethod::OAuth2ClientCredentials => {
            let token_url = match &auth.token_url {
                Some(url) => check.http_url("auth.token_url", url),
                None => {
                    check.problem("auth.token_url", format!("is required {with}"));
                    None
                }
            };
            let client_id = required_text(check, "auth.client_id", auth.client_id.as_deref(), &with);
            let client_secret = check.required_secret("auth.client_secret", auth.client_secret.as_ref(), &with);
            let scope = auth.scope.clone().filter(|s| !s.trim().is_empty());
            Some(PaymentAuth::OAuth2ClientCredentials {
                token_url: token_url?,
                client_id: client_id?,
                client_secret: client_secret?,
                scope,
            })
        }
        AuthMethod::ClientCertificate => {
            let certificate = check.required_secret("auth.certificate", auth.certificate.as_ref(), &with);
            let certificate_pem = certificate.map(|c| c.expose_secret().to_owned()).filter(|pem| {
                let is_pem = pem.trim_start().starts_with("-----BEGIN CERTIFICATE-----");
                if !is_pem {
                    check.problem("auth.certificate", "must be a PEM certificate (-----BEGIN CERTIFICATE-----)");
                }
                is_pem
            });
            let private_key = check.private_key("auth.private_key", auth.private_key.as_ref(), &with);
            Some(PaymentAuth::ClientCertificate { certificate_pem: certificate_pem?, private_key: private_key? })
        }
    }
}

fn required_text(check: &mut FileCheck<'_>, key: &str, value: Option<&str>, with: &str) -> Option<String> {
    match value {
        Some(value) => check.non_empty(key, value),
        None => {
            check.problem(key, format!("is required {with}"));
            None
        }
    }
}
