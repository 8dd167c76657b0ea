//! Personal data in a payment request (SECURITY.md #24): the payer (`requestor`: name, first name,
//! gender, organisation, address) and the free text `description`. They are taken out of the request
//! before it is stored, kept beside it sealed under the master key for this payment alone, and put
//! back only where a flow needs them: the answers to the online service (POST, its replay, GET).
//! The provider gets them in memory at the create; the finance exports never read them.
//!
//! After the tenant's retention period the sealed part is deleted (`retention`); the request that
//! stays is what the finance office must keep (amounts, purpose, items, booking data).

use serde_json::{Map, Value};

use crate::crypto::CryptoError;
use crate::crypto::MasterKey;

/// The request's top-level fields that are personal data.
pub(crate) const PERSONAL_FIELDS: [&str; 2] = ["requestor", "description"];

/// What a payment's personal data is sealed for: another payment's row cannot open it.
fn record_id(transaction_id: &str) -> String {
    format!("payment:{transaction_id}")
}

/// A request as stored: the JSON texts without personal data, and that data sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRequest {
    pub request: String,
    pub effective_request: String,
    pub personal_data: String,
}

/// Takes the personal fields out of a request's JSON; what was there, by field name.
pub(crate) fn take(request: &mut Value) -> Map<String, Value> {
    let mut taken = Map::new();
    if let Value::Object(fields) = request {
        for field in PERSONAL_FIELDS {
            if let Some(value) = fields.remove(field) {
                taken.insert(field.to_owned(), value);
            }
        }
    }
    taken
}

/// Puts personal fields taken by [`take`] back into a request's JSON.
pub(crate) fn put_back(request: &mut Value, personal: Map<String, Value>) {
    if let Value::Object(fields) = request {
        fields.extend(personal);
    }
}

/// Splits the request as sent and as the provider got it into what is stored. The personal fields
/// are those of the request as sent (the provider's copy has the same ones).
pub(crate) fn split(
    master: &MasterKey,
    transaction_id: &str,
    mut request: Value,
    mut effective: Value,
) -> Result<StoredRequest, CryptoError> {
    let personal = take(&mut request);
    take(&mut effective);
    Ok(StoredRequest {
        request: request.to_string(),
        effective_request: effective.to_string(),
        personal_data: seal(master, transaction_id, &personal)?,
    })
}

pub(crate) fn seal(
    master: &MasterKey,
    transaction_id: &str,
    personal: &Map<String, Value>,
) -> Result<String, CryptoError> {
    let plain = serde_json::to_vec(personal).map_err(|e| CryptoError::Material(e.to_string()))?;
    master.seal(&record_id(transaction_id), &plain)
}

pub(crate) fn open(master: &MasterKey, transaction_id: &str, sealed: &str) -> Result<Map<String, Value>, CryptoError> {
    let plain = master.open(&record_id(transaction_id), sealed)?;
    serde_json::from_slice(&plain).map_err(|_| CryptoError::Material("the sealed personal data is not JSON".to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn personal_fields_leave_both_requests_and_come_back_only_for_their_payment() -> Result<(), CryptoError> {
        let master = MasterKey::generate();
        let request = json!({ "requestId": "R-1", "description": "for Erika", "requestor": { "name": "Muster" } });
        let effective = json!({ "requestId": "R-1", "description": "for Erika", "requestor": { "name": "Muster" },
                                "redirectUrl": "https://pforte/return" });
        let stored = split(&master, "tx-1", request.clone(), effective)?;
        for text in [&stored.request, &stored.effective_request, &stored.personal_data] {
            assert!(!text.contains("Muster") && !text.contains("Erika"), "{text}");
        }
        let mut echoed: Value =
            serde_json::from_str(&stored.request).map_err(|e| CryptoError::Material(e.to_string()))?;
        put_back(&mut echoed, open(&master, "tx-1", &stored.personal_data)?);
        assert_eq!(echoed, request);
        assert!(open(&master, "tx-2", &stored.personal_data).is_err(), "sealed for tx-1 only");
        Ok(())
    }
}
