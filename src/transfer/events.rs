//! The event log's Security Event Tokens (RFC 8417) as FIT-Connect writes them: pforte signs its own
//! (`create-submission`, `submit-submission`) with its PS512 key from the key store, published in its
//! JWKS; the subscriber's `accept-submission` / `reject-submission` are verified against the
//! destination's signing key and stored exactly as posted.

use josekit::jwk::Jwk;
use josekit::jws::JwsHeader;
use josekit::jwt::{self, JwtPayload};
use serde_json::{json, Map, Value};

use super::TransferError;
use crate::keys::{KeyError, KeyService, SigningAlg};
use crate::registry::Destination;
use crate::store::transfer::EventRow;

pub const EVENT_URI_BASE: &str = "https://schema.fitko.de/fit-connect/events/";
pub const EVENT_CREATE: &str = "create-submission";
pub const EVENT_SUBMIT: &str = "submit-submission";
pub const EVENT_ACCEPT: &str = "accept-submission";
pub const EVENT_REJECT: &str = "reject-submission";
pub const EVENT_DELETE: &str = "delete-submission";
const SET_TYPE: &str = "secevent+jwt";
/// A subscriber's SET dated further ahead than this is refused (clocks differ a little).
const MAX_FUTURE_SECS: i64 = 60;

/// Signs one of pforte's events about `submission_id` in `case_id` and returns it as a log entry.
pub(super) async fn pforte_event(
    keys: &KeyService,
    issuer: &str,
    now_millis: i64,
    (submission_id, case_id): (&str, &str),
    event: &str,
    payload: Value,
) -> Result<EventRow, KeyError> {
    let jti = uuid::Uuid::new_v4().to_string();
    let mut events = Map::new();
    events.insert(format!("{EVENT_URI_BASE}{event}"), payload);
    let claims = json!({
        "jti": jti,
        "iss": issuer,
        "iat": now_millis / 1000,
        "sub": format!("submission:{submission_id}"),
        "txn": format!("case:{case_id}"),
        "events": events,
    });
    let token = sign_ps512(keys, SET_TYPE, claims).await?;
    Ok(EventRow {
        event_id: jti,
        case_id: case_id.to_owned(),
        submission_id: submission_id.to_owned(),
        event_type: event.to_owned(),
        token,
        created_at: now_millis,
    })
}

/// A JWS in compact form over `claims`, header `typ`, `alg` PS512 and the `kid` of pforte's current
/// PS512 key (published in its JWKS): the event log's SETs and the login and payment evidence.
pub(super) async fn sign_ps512(keys: &KeyService, typ: &str, claims: Value) -> Result<String, KeyError> {
    let signer = keys.signer(SigningAlg::Ps512).await?;
    let mut header = JwsHeader::new();
    header.set_token_type(typ);
    header.set_key_id(&signer.kid);
    let crypto = |e: josekit::JoseError| KeyError::Crypto(e.to_string());
    let payload = JwtPayload::from_map(claims.as_object().cloned().unwrap_or_default()).map_err(crypto)?;
    jwt::encode_with_signer(&payload, &header, signer.signer.as_ref()).map_err(crypto)
}

/// The submission id a SET's `sub` names (`submission:<id>`), read WITHOUT verifying the token: only
/// to pick which submission of a case to verify it against.
pub(super) fn claimed_submission(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let id = claims.get("sub")?.as_str()?.strip_prefix("submission:")?;
    super::parse_uuid("sub", id).ok()
}

/// What a subscriber decided, from its verified SET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    Accept,
    Reject,
}

/// Verifies a subscriber's SET (SECURITY.md #39): typ `secevent+jwt`, PS512 with a signing key of `destination` named by
/// `kid`, `iss` the destinationId, `sub` and `txn` this submission and case, a `jti`, an `iat` not in
/// the future, and exactly one event, accept or reject. Returns the decision and the `jti`.
pub(super) fn verify_subscriber_event(
    token: &str,
    destination: &Destination,
    (submission_id, case_id): (&str, &str),
    now_secs: i64,
) -> Result<(Decision, String), TransferError> {
    let invalid = |reason: &str| TransferError::InvalidEvent(reason.to_owned());
    let header = jwt::decode_header(token).map_err(|_| invalid("the body is not a signed JWT"))?;
    if header.claim("typ").and_then(Value::as_str) != Some(SET_TYPE) {
        return Err(invalid("the SET's typ must be secevent+jwt"));
    }
    if header.claim("alg").and_then(Value::as_str) != Some("PS512") {
        return Err(invalid("the SET must be signed with PS512"));
    }
    let kid = header.claim("kid").and_then(Value::as_str).ok_or_else(|| invalid("the SET names no kid"))?;
    let key = destination
        .signing_keys()
        .find(|key| key.kid == kid)
        .ok_or_else(|| invalid("the SET's kid is no signing key of this destination"))?;
    // The algorithm comes from the registry's key, never from the token alone.
    let jwk = Jwk::from_map(key.jwk.clone()).map_err(|_| invalid("the destination's signing key is not usable"))?;
    let verifier = josekit::jws::PS512
        .verifier_from_jwk(&jwk)
        .map_err(|_| invalid("the destination's signing key is not usable"))?;
    let (payload, _) =
        jwt::decode_with_verifier(token, &verifier).map_err(|_| invalid("the SET's signature does not verify"))?;
    let text = |name: &str| payload.claim(name).and_then(Value::as_str);
    if text("iss") != Some(destination.id.as_str()) {
        return Err(invalid("the SET's iss must be the destinationId"));
    }
    if text("sub") != Some(&format!("submission:{submission_id}")) {
        return Err(invalid("the SET's sub must be submission:<submissionId> of this case"));
    }
    if text("txn") != Some(&format!("case:{case_id}")) {
        return Err(invalid("the SET's txn must be case:<caseId>"));
    }
    let jti = text("jti").filter(|j| !j.is_empty() && j.len() <= 64).ok_or_else(|| invalid("the SET needs a jti"))?;
    let iat = payload.claim("iat").and_then(Value::as_i64).ok_or_else(|| invalid("the SET needs an iat"))?;
    if iat > now_secs + MAX_FUTURE_SECS {
        return Err(invalid("the SET's iat is in the future"));
    }
    let events = payload.claim("events").and_then(Value::as_object).ok_or_else(|| invalid("the SET has no events"))?;
    let decision = match events.keys().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [uri] if *uri == format!("{EVENT_URI_BASE}{EVENT_ACCEPT}") => Decision::Accept,
        [uri] if *uri == format!("{EVENT_URI_BASE}{EVENT_REJECT}") => Decision::Reject,
        _ => return Err(invalid("the SET must carry exactly one event: accept-submission or reject-submission")),
    };
    Ok((decision, jti.to_owned()))
}
