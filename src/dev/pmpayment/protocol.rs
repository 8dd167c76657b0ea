//! pmPayment's legacy form protocol as the peer speaks it, written from the description in the shared
//! reference `xbezahldienste.md` ("pmPayment legacy"), not from pforte's adapter: the signed fields in
//! their order, the signature (lowercase hex HMAC-SHA256 over the values joined by `|`), and the
//! status codes (0 open, 1 paid, 2 cancelled, 3 failed).

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::dev::xbezahldienste::Status;

/// The create form's signed fields, in signing order (`hash` follows them).
pub(crate) const CREATE_FIELDS: [&str; 8] =
    ["ags", "amount", "procedure", "desc", "accountingRecord", "txid", "notifyURL", "redirectURL"];

/// The notify form's signed fields, in signing order (`hash` follows them).
pub(crate) const NOTIFY_FIELDS: [&str; 6] = ["txid", "ags", "status", "amount", "timestamp", "eventId"];

/// The hex signature over `values`.
pub(crate) fn sign(key: &[u8], values: &[&str]) -> String {
    mac(key, values).map(|mac| hex::encode(mac.finalize().into_bytes())).unwrap_or_default()
}

/// Whether `hash` (hex, either case) signs `values`; compared in constant time.
pub(crate) fn signed(key: &[u8], values: &[&str], hash: &str) -> bool {
    let Ok(given) = hex::decode(hash) else { return false };
    mac(key, values).is_some_and(|mac| mac.verify_slice(&given).is_ok())
}

fn mac(key: &[u8], values: &[&str]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(values.join("|").as_bytes());
    Some(mac)
}

/// A form body as a map; a field given twice is refused, as the signature could cover either.
pub(crate) fn read_form(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut form = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body).into_owned() {
        if form.insert(name.clone(), value).is_some() {
            return Err(format!("{name} is given twice"));
        }
    }
    Ok(form)
}

/// The protocol's number for `status`.
pub(crate) fn status_code(status: Status) -> i64 {
    match status {
        Status::Initial => 0,
        Status::Payed => 1,
        Status::Canceled => 2,
        Status::Failed => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_lowercase_hex_hmac_sha256_over_the_values_joined_by_bars() {
        // Computed independently: printf 'a|b|c' | openssl dgst -sha256 -hmac key
        assert_eq!(sign(b"key", &["a", "b", "c"]), "06344469ff58b6f21b143d4966e6ade1132f935a6649444cc7828fb0f7849bd4");
        let good = sign(b"key", &["1", "2"]);
        assert!(signed(b"key", &["1", "2"], &good.to_uppercase()));
        assert!(!signed(b"other", &["1", "2"], &good));
        assert!(!signed(b"key", &["1|2"], &sign(b"key", &["1", "3"])));
        assert!(!signed(b"key", &["1", "2"], "not hex"));
    }

    #[test]
    fn a_field_given_twice_is_refused() {
        assert!(read_form(b"a=1&a=2").is_err());
        assert_eq!(read_form(b"a=1&b=x%7Cy").unwrap()["b"], "x|y");
    }
}
