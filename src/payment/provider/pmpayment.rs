//! pmPayment's legacy form interface (govconnect), behind [`PaymentAdapter`]:
//!
//! - **create**: form `POST {base}/payment/secure` with `ags` (the endPointId), `amount` (euro cents,
//!   an integer computed exactly from the decimal amount), `procedure` (the originatorId), `desc` (the
//!   purpose), `accountingRecord` (the items' bookingData as compact JSON: an array with one object per
//!   item), `txid` (pforte's transaction id), `notifyURL` (pforte's callback URL for this provider
//!   instance), `redirectURL` and `hash`. The answer is JSON `{url, txid}`: the pay page and the
//!   transaction id the provider keeps (pforte's, echoed).
//! - **status**: `GET {base}/payment/status/{ags}/{txid}`, answering JSON
//!   `{txid, status, amount, paymentMethod?, transactionReference?}` (`amount` in cents, as in notify;
//!   read into [`ProviderState::amount`] and compared with the payment's like a callback's).
//! - **notify** (the callback to `notifyURL`): a form body with `txid`, `ags`, `status`, `amount`
//!   (cents), `timestamp` (Unix seconds), `eventId` and `hash`.
//!
//! Every `hash` is the lowercase hex HMAC-SHA256 under the instance's `hmac_key` over the values in
//! the order listed ([`CREATE_FIELDS`], [`NOTIFY_FIELDS`]) joined by `|`. Incoming hashes are compared
//! in constant time (`Mac::verify_slice`).
//!
//! Status codes, in both the status answer and notify:
//!
//! | code | meaning | pforte status |
//! | --- | --- | --- |
//! | `0` | open | `INITIAL` |
//! | `1` | paid | `PAYED` |
//! | `2` | canceled by the payer | `CANCELED` |
//! | `3` | failed | `FAILED` |
//!
//! Any other code is not the protocol (an invalid answer, or a malformed callback).

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use url::Url;

use super::transport::{url_under, ProviderHttp};
use super::{
    CallbackError, NewProviderPayment, PaymentAdapter, ProviderCallback, ProviderCreated, ProviderError,
    ProviderFuture, ProviderState,
};
use crate::payment::wire::{PaymentMethod, Status};
use crate::registry::PaymentProvider;

/// The create form's signed fields, in signing order (`hash` follows them).
pub(crate) const CREATE_FIELDS: [&str; 8] =
    ["ags", "amount", "procedure", "desc", "accountingRecord", "txid", "notifyURL", "redirectURL"];

/// The notify form's signed fields, in signing order (`hash` follows them).
pub(crate) const NOTIFY_FIELDS: [&str; 6] = ["txid", "ags", "status", "amount", "timestamp", "eventId"];

/// The transaction id the status probe asks about; pforte's own ids never look like it.
const PROBE_TXID: &str = "pforte-status-probe";

/// The longest event id pforte keeps; a longer one is not the protocol.
const MAX_EVENT_ID: usize = 128;

pub(crate) struct PmPayment {
    base: Url,
    http: ProviderHttp,
    hmac_key: SecretString,
}

impl PmPayment {
    pub(crate) fn new(provider: &PaymentProvider, shared: &reqwest::Client) -> Result<Self, ProviderError> {
        let hmac_key = provider
            .hmac_key
            .clone()
            .ok_or_else(|| ProviderError::Misconfigured(format!("{}: no hmac_key", provider.id)))?;
        Ok(PmPayment { base: provider.base_url.url().clone(), http: ProviderHttp::new(provider, shared)?, hmac_key })
    }

    fn key(&self) -> &[u8] {
        self.hmac_key.expose_secret().as_bytes()
    }

    /// The JSON body of an answer; 5xx, a refused signature or credentials, and other 4xx as errors.
    async fn answer(&self, response: reqwest::Response) -> Result<Value, ProviderError> {
        let status = response.status();
        let body = self.http.body(response).await?;
        if status.is_server_error() {
            return Err(ProviderError::Unavailable(format!("answered {}", status.as_u16())));
        }
        // pforte signed or authenticated wrongly: its provider file is at fault, not the request.
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ProviderError::Misconfigured(format!(
                "the provider refused pforte's signature or credentials ({})",
                status.as_u16()
            )));
        }
        let json: Value = serde_json::from_slice(&body)
            .map_err(|_| ProviderError::InvalidAnswer(format!("{} without JSON", status.as_u16())))?;
        if status.is_client_error() {
            let code = json["code"].as_str().unwrap_or("UNSPECIFIED").to_owned();
            let detail = json["message"].as_str().unwrap_or_default().chars().take(500).collect();
            return Err(ProviderError::Refused { code, detail });
        }
        if !status.is_success() {
            return Err(ProviderError::InvalidAnswer(format!("answered {}", status.as_u16())));
        }
        Ok(json)
    }
}

#[derive(Deserialize)]
struct CreateAnswer {
    url: String,
    txid: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusAnswer {
    txid: String,
    status: i64,
    /// Euro cents, as in notify.
    amount: Option<i64>,
    payment_method: Option<String>,
    transaction_reference: Option<String>,
}

impl PaymentAdapter for PmPayment {
    fn create<'a>(&'a self, payment: &'a NewProviderPayment<'a>) -> ProviderFuture<'a, ProviderCreated> {
        Box::pin(async move {
            let request = payment.request;
            let amount = to_cents(request.gros_amount.value()).ok_or_else(|| ProviderError::Refused {
                code: "VALIDATION_ERROR".to_owned(),
                detail: "the amount is not a whole number of cents".to_owned(),
            })?;
            let booking: Vec<_> = request.items.iter().map(|item| &item.booking_data).collect();
            let accounting_record = serde_json::to_string(&booking)
                .map_err(|_| ProviderError::Misconfigured("booking data cannot be written as JSON".into()))?;
            let amount = amount.to_string();
            let values = [
                payment.endpoint_id,
                &amount,
                payment.originator_id,
                request.purpose.as_str(),
                &accounting_record,
                payment.transaction_id,
                payment.callback_url,
                &request.redirect_url,
            ];
            let hash = signature(self.key(), &values);
            let mut form: Vec<(&str, &str)> = CREATE_FIELDS.iter().copied().zip(values).collect();
            form.push(("hash", &hash));

            let url = url_under(&self.base, &["payment", "secure"])?;
            let sent = self.http.authorise(self.http.post(url).form(&form)).await?;
            let json = self.answer(self.http.send(sent).await?).await?;
            let created: CreateAnswer = serde_json::from_value(json)
                .map_err(|_| ProviderError::InvalidAnswer("the answer lacks url or txid".into()))?;
            let pay_url = Url::parse(&created.url)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .ok_or_else(|| ProviderError::InvalidAnswer("url is not an http(s) URL".into()))?;
            if created.txid.is_empty() {
                return Err(ProviderError::InvalidAnswer("txid is empty".into()));
            }
            Ok(ProviderCreated { reference: created.txid, pay_url: pay_url.into() })
        })
    }

    fn status<'a>(
        &'a self,
        _originator_id: &'a str,
        endpoint_id: &'a str,
        reference: &'a str,
    ) -> ProviderFuture<'a, ProviderState> {
        Box::pin(async move {
            let url = url_under(&self.base, &["payment", "status", endpoint_id, reference])?;
            let sent = self.http.authorise(self.http.get(url)).await?;
            let json = self.answer(self.http.send(sent).await?).await?;
            let answer: StatusAnswer = serde_json::from_value(json)
                .map_err(|_| ProviderError::InvalidAnswer("the status answer is malformed".into()))?;
            if answer.txid != reference {
                return Err(ProviderError::InvalidAnswer("the answer is about another transaction".into()));
            }
            let status = status_from_code(answer.status)
                .ok_or_else(|| ProviderError::InvalidAnswer(format!("unknown status code {}", answer.status)))?;
            let amount = match answer.amount {
                Some(cents) if cents < 0 => return Err(ProviderError::InvalidAnswer("amount is not cents".into())),
                cents => cents.map(from_cents),
            };
            Ok(ProviderState {
                status,
                status_detail: None,
                payment_method: answer.payment_method.as_deref().map(PaymentMethod::parse),
                payment_method_detail: None,
                transaction_reference: answer.transaction_reference,
                amount,
            })
        })
    }

    /// pmPayment has no status call of its own: the nearest is the status read of a transaction
    /// that does not exist. A refusal in the protocol's form (404 `NOT_FOUND`) means the provider
    /// answers and reads its transactions for this ags: up. 401/403 mean pforte's credentials are
    /// refused (misconfigured); 5xx or no answer, down.
    fn probe<'a>(&'a self, _originator_id: &'a str, endpoint_id: &'a str) -> ProviderFuture<'a, ()> {
        Box::pin(async move {
            let url = url_under(&self.base, &["payment", "status", endpoint_id, PROBE_TXID])?;
            let sent = self.http.authorise(self.http.get(url)).await?;
            match self.answer(self.http.send(sent).await?).await {
                Ok(_) => Ok(()),
                Err(ProviderError::Refused { .. }) => Ok(()),
                Err(other) => Err(other),
            }
        })
    }

    fn parse_callback(&self, _headers: &HeaderMap, body: &[u8]) -> Result<ProviderCallback, CallbackError> {
        let form = read_form(body).map_err(CallbackError::Malformed)?;
        let hash = form.get("hash").filter(|h| !h.is_empty()).ok_or(CallbackError::MissingSignature)?;
        let values = NOTIFY_FIELDS.map(|field| form.get(field).map_or("", String::as_str));
        if !verify(self.key(), &values, hash) {
            return Err(CallbackError::BadSignature);
        }
        let [txid, ags, status, amount, timestamp, event_id] = values;
        let malformed = |what: &str| CallbackError::Malformed(what.to_owned());
        if txid.is_empty() || ags.is_empty() {
            return Err(malformed("txid and ags are required"));
        }
        if event_id.is_empty() || event_id.len() > MAX_EVENT_ID {
            return Err(malformed("eventId is required (at most 128 characters)"));
        }
        let status = status.parse().ok().and_then(status_from_code).ok_or_else(|| malformed("unknown status"))?;
        let amount: i64 =
            amount.parse().ok().filter(|cents| *cents >= 0).ok_or_else(|| malformed("amount is not cents"))?;
        let timestamp = timestamp.parse().map_err(|_| malformed("timestamp is not Unix seconds"))?;
        Ok(ProviderCallback {
            reference: txid.to_owned(),
            endpoint_id: Some(ags.to_owned()),
            event_id: event_id.to_owned(),
            timestamp,
            amount: Some(from_cents(amount)),
            claimed_status: Some(status),
        })
    }
}

/// The lowercase hex HMAC-SHA256 under `key` over `values` joined by `|`.
pub(crate) fn signature(key: &[u8], values: &[&str]) -> String {
    mac(key, values).map(|mac| hex::encode(mac.finalize().into_bytes())).unwrap_or_default()
}

/// Whether `hash` (hex) is the signature over `values`, compared in constant time.
pub(crate) fn verify(key: &[u8], values: &[&str], hash: &str) -> bool {
    let Ok(given) = hex::decode(hash) else { return false };
    mac(key, values).is_some_and(|mac| mac.verify_slice(&given).is_ok())
}

/// HMAC takes keys of any length, so this is `None` never in practice.
fn mac(key: &[u8], values: &[&str]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(values.join("|").as_bytes());
    Some(mac)
}

/// A form body as a map; a field given twice is refused (which one would the signature cover?).
pub(crate) fn read_form(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut form = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body).into_owned() {
        if form.insert(name.clone(), value).is_some() {
            return Err(format!("{name} is given twice"));
        }
    }
    Ok(form)
}

/// The protocol's status code for `status` (pforte only reads codes; the test checks both ways).
#[cfg(test)]
fn status_code(status: Status) -> i64 {
    match status {
        Status::Initial => 0,
        Status::Payed => 1,
        Status::Canceled => 2,
        Status::Failed => 3,
    }
}

pub(crate) fn status_from_code(code: i64) -> Option<Status> {
    match code {
        0 => Some(Status::Initial),
        1 => Some(Status::Payed),
        2 => Some(Status::Canceled),
        3 => Some(Status::Failed),
        _ => None,
    }
}

/// Euros as whole cents, exactly; `None` for fractions of a cent or out of range.
pub(crate) fn to_cents(euros: Decimal) -> Option<i64> {
    let cents = euros.checked_mul(Decimal::ONE_HUNDRED)?;
    if cents.fract().is_zero() {
        cents.to_i64()
    } else {
        None
    }
}

pub(crate) fn from_cents(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_lowercase_hex_hmac_sha256_over_the_values_joined_by_bars() {
        // Computed independently: printf 'a|b|c' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature(b"key", &["a", "b", "c"]),
            "06344469ff58b6f21b143d4966e6ade1132f935a6649444cc7828fb0f7849bd4"
        );
    }

    #[test]
    fn verification_accepts_the_signature_and_nothing_else() {
        let good = signature(b"key", &["1", "2"]);
        assert!(verify(b"key", &["1", "2"], &good));
        assert!(verify(b"key", &["1", "2"], &good.to_uppercase()), "hex is case-insensitive");
        assert!(!verify(b"other", &["1", "2"], &good));
        assert!(!verify(b"key", &["1", "3"], &good));
        assert!(!verify(b"key", &["1|2"], &signature(b"key", &["1", "3"])));
        assert!(!verify(b"key", &["1", "2"], "not hex"));
        assert!(!verify(b"key", &["1", "2"], &good[..32]));
    }

    #[test]
    fn cents_are_exact() {
        assert_eq!(to_cents(Decimal::new(1200, 2)), Some(1200));
        assert_eq!(to_cents(Decimal::new(12, 0)), Some(1200));
        assert_eq!(to_cents(Decimal::new(99_999_999, 2)), Some(99_999_999));
        assert_eq!(to_cents(Decimal::new(1, 1)), Some(10));
        assert_eq!(to_cents(Decimal::new(12_005, 3)), None);
        assert_eq!(from_cents(1250), Decimal::new(1250, 2));
        assert_eq!(from_cents(1200), Decimal::new(12, 0), "equal as numbers");
    }

    #[test]
    fn every_status_has_its_code_and_back() {
        for status in [Status::Initial, Status::Payed, Status::Canceled, Status::Failed] {
            assert_eq!(status_from_code(status_code(status)), Some(status));
        }
        assert_eq!(status_from_code(4), None);
        assert_eq!(status_from_code(-1), None);
    }

    #[test]
    fn a_field_given_twice_makes_the_form_unreadable() {
        assert!(read_form(b"a=1&b=2").is_ok());
        assert!(read_form(b"a=1&a=2").is_err());
    }
}
