//! The back-channel calls of a login: redeeming the code at the token endpoint (with PKCE and the
//! provider's client authentication) and reading userinfo with the access token.

use std::future::Future;
use std::pin::Pin;

use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, JwsSigner, ES256, ES384, PS256, RS256};
use josekit::jwt::JwtPayload;
use openidconnect::core::{CoreClient, CoreJwsSigningAlgorithm, CoreTokenResponse};
use openidconnect::{
    AsyncHttpClient, AuthType, AuthorizationCode, ClientId, ClientSecret, HttpRequest, HttpResponse, PkceCodeVerifier,
    RedirectUrl, RequestTokenError,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use tracing::Instrument;

use super::discovery::{json_problem, without_url, Provider};
use super::{PendingUpstream, UpstreamError};
use crate::clock::Clock;
use crate::http_client::{
    outbound_span, read_capped, record_failure, record_status, with_trace_context, DEFAULT_MAX_BODY_BYTES,
};
use crate::registry::{IdentityProvider, UpstreamClientAuth};

/// RFC 7523, section 2.2.
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a client assertion is valid: long enough for one request, short enough to be useless later.
const ASSERTION_LIFETIME_SECS: i64 = 60;

/// Redeems the authorization code for tokens.
pub(super) async fn redeem_code(
    http: &reqwest::Client,
    clock: &dyn Clock,
    idp: &IdentityProvider,
    provider: &Provider,
    pending: &PendingUpstream,
    code: &str,
) -> Result<CoreTokenResponse, UpstreamError> {
    let redirect_url = RedirectUrl::new(pending.redirect_uri.clone())
        .map_err(|_| UpstreamError::Misconfigured("the stored redirect URI is not a valid URL".into()))?;
    let oidc = super::oidc_settings(idp)?;
    let client_id = ClientId::new(oidc.client_id.clone());
    let secret = match &oidc.client_auth {
        UpstreamClientAuth::ClientSecretBasic { secret } | UpstreamClientAuth::ClientSecretPost { secret } => {
            Some(ClientSecret::new(secret.expose_secret().to_owned()))
        }
        UpstreamClientAuth::PrivateKeyJwt { .. } => None,
    };
    let auth_type = match &oidc.client_auth {
        UpstreamClientAuth::ClientSecretBasic { .. } => AuthType::BasicAuth,
        _ => AuthType::RequestBody,
    };
    let client = CoreClient::from_provider_metadata(provider.metadata.clone(), client_id, secret)
        .set_redirect_uri(redirect_url)
        .set_auth_type(auth_type);
    let request = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|_| UpstreamError::Unavailable("the discovery document names no token endpoint".into()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()));
    let request = match &oidc.client_auth {
        UpstreamClientAuth::PrivateKeyJwt { private_key } => {
            let token_endpoint = provider.metadata.token_endpoint().map(|url| url.as_str()).unwrap_or_default();
            let advertised = provider.metadata.token_endpoint_auth_signing_alg_values_supported();
            let assertion = client_assertion(private_key, &oidc.client_id, token_endpoint, advertised, clock)?;
            request
                .add_extra_param("client_assertion_type", ASSERTION_TYPE)
                .add_extra_param("client_assertion", assertion)
        }
        _ => request,
    };
    let span = outbound_span("upstream.token", idp.id.as_str());
    request.request_async(&Transport(http.clone())).instrument(span).await.map_err(|e| match e {
        RequestTokenError::Request(TransportError(reason)) => {
            UpstreamError::Unavailable(format!("the token endpoint failed: {reason}"))
        }
        RequestTokenError::ServerResponse(refusal) => {
            UpstreamError::InvalidResponse(format!("the token endpoint refused the code: {}", refusal.error()))
        }
        // The parse error holds the response body, which may hold tokens: only its kind is kept.
        RequestTokenError::Parse(e, _) => UpstreamError::InvalidResponse(format!(
            "the token response is not valid at `{}`: {}",
            e.path(),
            json_problem(e.inner())
        )),
        RequestTokenError::Other(reason) => {
            UpstreamError::InvalidResponse(format!("the token endpoint answered unexpectedly: {reason}"))
        }
    })
}

/// Reads userinfo and checks that it is about the same subject as the ID token (OpenID Connect Core,
/// section 5.3.2): otherwise claims of one person could be attached to another's login.
pub(super) async fn fetch_userinfo(
    http: &reqwest::Client,
    endpoint: &url::Url,
    access_token: &str,
    subject: &str,
) -> Result<Map<String, Value>, UpstreamError> {
    let request =
        http.get(endpoint.clone()).bearer_auth(access_token).header(reqwest::header::ACCEPT, "application/json");
    let response = with_trace_context(request)
        .send()
        .await
        .inspect_err(|_| record_failure())
        .map_err(|e| UpstreamError::Unavailable(format!("the userinfo endpoint failed: {}", without_url(&e))))?;
    let status = response.status();
    record_status(status);
    if status.is_server_error() {
        return Err(UpstreamError::Unavailable(format!("the userinfo endpoint answered HTTP {}", status.as_u16())));
    }
    if status != reqwest::StatusCode::OK {
        return Err(UpstreamError::InvalidResponse(format!("the userinfo endpoint answered HTTP {}", status.as_u16())));
    }
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        // Signed or encrypted userinfo (application/jwt) is not supported; nothing else is userinfo.
        return Err(UpstreamError::InvalidResponse("the userinfo response is not application/json".into()));
    }
    let body = read_capped(response, DEFAULT_MAX_BODY_BYTES)
        .await
        .map_err(|e| UpstreamError::Unavailable(format!("the userinfo endpoint failed: {e}")))?;
    let claims: Map<String, Value> = serde_json::from_slice(&body).map_err(|e| {
        UpstreamError::InvalidResponse(format!("the userinfo response is not a JSON object: {}", json_problem(&e)))
    })?;
    if claims.get("sub").and_then(Value::as_str) != Some(subject) {
        return Err(UpstreamError::InvalidResponse("the userinfo response is about another subject".into()));
    }
    Ok(claims)
}

/// A `private_key_jwt` client assertion (RFC 7523, OpenID Connect Core section 9): `iss` = `sub` =
/// client id, `aud` = token endpoint, a random `jti`, valid for 60 s. The algorithm is the first of
/// ES256, ES384, PS256, RS256 that the key supports and the provider accepts.
fn client_assertion(
    private_key: &SecretString,
    client_id: &str,
    token_endpoint: &str,
    advertised: Option<&Vec<CoreJwsSigningAlgorithm>>,
    clock: &dyn Clock,
) -> Result<String, UpstreamError> {
    let signer = assertion_signer(private_key.expose_secret(), advertised)?;
    let now = clock.now().timestamp();
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "exp": now + ASSERTION_LIFETIME_SECS,
    });
    let misconfigured = |_| UpstreamError::Misconfigured("the client assertion cannot be signed".into());
    let payload = match claims {
        Value::Object(map) => JwtPayload::from_map(map).map_err(misconfigured)?,
        _ => return Err(UpstreamError::Misconfigured("the client assertion cannot be built".into())),
    };
    let mut header = JwsHeader::new();
    header.set_token_type("JWT");
    josekit::jwt::encode_with_signer(&payload, &header, signer.as_ref()).map_err(misconfigured)
}

fn assertion_signer(
    key: &str,
    advertised: Option<&Vec<CoreJwsSigningAlgorithm>>,
) -> Result<Box<dyn JwsSigner>, UpstreamError> {
    let key = key.trim();
    let jwk = if key.starts_with('{') {
        Some(Jwk::from_bytes(key.as_bytes()).map_err(|_| {
            UpstreamError::Misconfigured("client_auth.private_key is not a readable JSON Web Key".into())
        })?)
    } else {
        None
    };
    let candidates = [
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::EcdsaP384Sha384,
        CoreJwsSigningAlgorithm::RsaSsaPssSha256,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    ];
    candidates
        .iter()
        .filter(|alg| advertised.is_none_or(|algs| algs.contains(alg)))
        .find_map(|alg| signer_for(alg, key, jwk.as_ref()))
        .ok_or_else(|| {
            UpstreamError::Misconfigured(
                "client_auth.private_key fits none of the algorithms ES256, ES384, PS256, RS256 that the \
                 provider accepts"
                    .into(),
            )
        })
}

fn signer_for(alg: &CoreJwsSigningAlgorithm, pem: &str, jwk: Option<&Jwk>) -> Option<Box<dyn JwsSigner>> {
    fn boxed<S: JwsSigner + 'static>(signer: Result<S, josekit::JoseError>) -> Option<Box<dyn JwsSigner>> {
        signer.ok().map(|s| Box::new(s) as Box<dyn JwsSigner>)
    }
    match (alg, jwk) {
        (CoreJwsSigningAlgorithm::EcdsaP256Sha256, Some(jwk)) => boxed(ES256.signer_from_jwk(jwk)),
        (CoreJwsSigningAlgorithm::EcdsaP256Sha256, None) => boxed(ES256.signer_from_pem(pem)),
        (CoreJwsSigningAlgorithm::EcdsaP384Sha384, Some(jwk)) => boxed(ES384.signer_from_jwk(jwk)),
        (CoreJwsSigningAlgorithm::EcdsaP384Sha384, None) => boxed(ES384.signer_from_pem(pem)),
        (CoreJwsSigningAlgorithm::RsaSsaPssSha256, Some(jwk)) => boxed(PS256.signer_from_jwk(jwk)),
        (CoreJwsSigningAlgorithm::RsaSsaPssSha256, None) => boxed(PS256.signer_from_pem(pem)),
        (CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, Some(jwk)) => boxed(RS256.signer_from_jwk(jwk)),
        (CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None) => boxed(RS256.signer_from_pem(pem)),
        _ => None,
    }
}

/// The shared client as the library's HTTP client, with two differences: a 5xx answer is a
/// transport failure (the provider is down), not an OAuth error response to parse; and the answer
/// is read with a size cap (SECURITY.md #31), as the library's own reqwest glue reads it whole.
struct Transport(reqwest::Client);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl<'c> AsyncHttpClient<'c> for Transport {
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let request = self.0.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body);
            let response = with_trace_context(request).send().await.map_err(|e| {
                record_failure();
                TransportError(without_url(&e).to_owned())
            })?;
            let status = response.status();
            record_status(status);
            if status.is_server_error() {
                return Err(TransportError(format!("answered HTTP {}", status.as_u16())));
            }
            let headers = response.headers().clone();
            let body =
                read_capped(response, DEFAULT_MAX_BODY_BYTES).await.map_err(|e| TransportError(e.to_string()))?;
            let mut answer = HttpResponse::new(body);
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            Ok(answer)
        })
    }
}
