//! The demo online service's client of pforte's Datentransfer API (FIT-Connect Submission API v1 and
//! pforte's evidence endpoints), as a real online service writes one: an access token from `/token`
//! (`client_credentials`, scope `transfer`) with the service's own secret, then JSON and
//! `application/jose` over HTTP at pforte's public URL; and the JWE encryption to the destination's
//! key with josekit. Refusals keep pforte's problem `code` to show; nothing here logs a token.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use josekit::jwe::{self, JweHeader};
use josekit::jwk::Jwk;
use serde_json::{json, Map, Value};

use super::{antrag_pages as pages, html, DemoState};

/// Why the application could not be sent. Texts hold no token and no plaintext.
pub(super) enum Failure {
    /// pforte refused a request with a problem (step, code, detail).
    Refused { step: &'static str, code: String, detail: String },
    /// Talking to pforte failed or its answer was not usable.
    Pforte(String),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Refused { step, code, detail } => html(
                StatusCode::BAD_GATEWAY,
                pages::failure(&format!("pforte hat abgelehnt: {step}"), Some((&code, &detail))),
            ),
            Failure::Pforte(reason) => {
                tracing::warn!(%reason, "demo service: sending the application failed");
                html(
                    StatusCode::BAD_GATEWAY,
                    pages::failure("pforte war nicht erreichbar oder hat unerwartet geantwortet.", None),
                )
            }
        }
    }
}

/// pforte's Datentransfer API as the demo service calls it.
pub(super) struct Transfer<'a> {
    http: &'a reqwest::Client,
    issuer: &'a str,
    token: String,
}

impl<'a> Transfer<'a> {
    pub(super) async fn connect(state: &'a DemoState) -> Result<Transfer<'a>, Failure> {
        let token = super::pay_api::demo_token(state, "transfer").await.map_err(Failure::Pforte)?;
        Ok(Transfer { http: &state.context.http, issuer: state.context.issuer.as_str(), token })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The destination's current encryption key (`encryptionKid` and its public JWK).
    pub(super) async fn encryption_key(&self, destination: &str) -> Result<(String, Map<String, Value>), Failure> {
        let step = "Zustellpunkt lesen";
        let described = answer(step, self.http.get(self.url(&format!("/v1/destinations/{destination}"))), 200).await?;
        let kid = described["encryptionKid"].as_str().ok_or(Failure::Pforte("no encryptionKid".into()))?.to_owned();
        let key_path = format!("/v1/destinations/{destination}/keys/{kid}");
        let jwk = answer(step, self.http.get(self.url(&key_path)), 200).await?;
        let jwk = jwk.as_object().cloned().ok_or(Failure::Pforte("the key is not a JWK".into()))?;
        Ok((kid, jwk))
    }

    pub(super) async fn announce(&self, body: &Value) -> Result<Value, Failure> {
        let request = self.http.post(self.url("/v1/submissions")).bearer_auth(&self.token).json(body);
        answer("Einreichung ankündigen", request, 201).await
    }

    /// `POST /v1/evidence/{kind}` (`authentication` or `payment`) with `body`.
    pub(super) async fn evidence(&self, kind: &str, body: &Value) -> Result<Value, Failure> {
        let request = self.http.post(self.url(&format!("/v1/evidence/{kind}"))).bearer_auth(&self.token).json(body);
        answer("Nachweis von pforte holen", request, 201).await
    }

    pub(super) async fn upload(&self, submission: &str, attachment: &str, jwe: String) -> Result<(), Failure> {
        let path = format!("/v1/submissions/{submission}/attachments/{attachment}");
        let request = self
            .http
            .put(self.url(&path))
            .bearer_auth(&self.token)
            .header("content-type", "application/jose")
            .body(jwe);
        answer("Anlage hochladen", request, 204).await.map(|_| ())
    }

    pub(super) async fn submit(&self, submission: &str, body: &Value) -> Result<(), Failure> {
        let request =
            self.http.put(self.url(&format!("/v1/submissions/{submission}"))).bearer_auth(&self.token).json(body);
        answer("Einreichung abschließen", request, 202).await.map(|_| ())
    }

    /// The case's event log: its SETs in order.
    pub(super) async fn events(&self, case: &str) -> Result<Vec<String>, Failure> {
        let request = self.http.get(self.url(&format!("/v1/cases/{case}/events?limit=500"))).bearer_auth(&self.token);
        let log = answer("Ereignisprotokoll lesen", request, 200).await?;
        Ok(log["eventLog"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_owned)).collect())
    }
}

async fn answer(step: &'static str, request: reqwest::RequestBuilder, expected: u16) -> Result<Value, Failure> {
    let response = request.send().await.map_err(|_| Failure::Pforte(format!("{step}: pforte is not reachable")))?;
    let status = response.status().as_u16();
    let body: Value = if status == 204 { Value::Null } else { response.json().await.unwrap_or(Value::Null) };
    if status == expected {
        return Ok(body);
    }
    match body["code"].as_str() {
        Some(code) => Err(Failure::Refused {
            step,
            code: code.to_owned(),
            detail: body["detail"].as_str().unwrap_or_default().to_owned(),
        }),
        None => Err(Failure::Pforte(format!("{step}: pforte answered {status}"))),
    }
}

/// A compact JWE of `plaintext` to the destination's key: RSA-OAEP-256 and A256GCM, with `kid` and
/// `cty` as FIT-Connect requires.
pub(super) fn encrypt(jwk: &Map<String, Value>, kid: &str, cty: &str, plaintext: &[u8]) -> Result<String, Failure> {
    let mut jwk = jwk.clone();
    // FIT-Connect publishes the key with key_ops ["wrapKey"]; josekit asks for "encrypt". With
    // RSA-OAEP the key only ever wraps the content key, which is what wrapKey says.
    jwk.remove("key_ops");
    let unusable = |_| Failure::Pforte("the destination's key is not usable for RSA-OAEP-256".into());
    let encrypter = jwe::RSA_OAEP_256.encrypter_from_jwk(&Jwk::from_map(jwk).map_err(unusable)?).map_err(unusable)?;
    let mut header = JweHeader::new();
    header.set_content_encryption("A256GCM");
    header.set_key_id(kid);
    header.set_content_type(cty);
    jwe::serialize_compact(plaintext, &header, &encrypter).map_err(|_| Failure::Pforte("encryption failed".into()))
}

/// `{"type": "sha512", "content": <hex>}` of `bytes`, as metadata 1.0.0 writes a hash.
pub(super) fn sha512(bytes: &[u8]) -> Value {
    use sha2::Digest;
    json!({ "type": "sha512", "content": hex::encode(sha2::Sha512::digest(bytes)) })
}
