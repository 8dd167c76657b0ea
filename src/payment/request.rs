//! The checked payment request: what `validate::parse_request_body` returns. Every field has passed
//! the standard's rules; serialising it gives the `paymentRequest` of a `PaymentTransaction` with the
//! standard's field names (amounts with two decimal places, see `money`).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use url::Url;

use crate::http_client::Reach;

use super::money::{serialize_number, Amount, ItemAmount};
use super::wire::Requestor;

/// Longest identifier: `requestId`, `originatorId`, `endPointId`.
pub(crate) const MAX_ID_LENGTH: usize = 36;

/// An XBezahldienste identifier: 1 to 36 characters of `^[\w\d-]+$`. The standard's regex comes
/// from Java, where `\w` is ASCII (`[A-Za-z0-9_]`), so only those and `-` are accepted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Identifier(String);

impl Identifier {
    pub fn parse(value: String) -> Result<Identifier, String> {
        if value.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if value.chars().count() > MAX_ID_LENGTH {
            return Err(format!("must be at most {MAX_ID_LENGTH} characters"));
        }
        if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err("may only contain the letters A-Z and a-z, digits, '_' and '-'".to_owned());
        }
        Ok(Identifier(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The only currency of this version of the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Currency {
    #[serde(rename = "EUR")]
    Eur,
}

/// `purpose`, the Verwendungszweck on bank statements: 1 to 27 characters of `^[\w\d\s-]+$`, read
/// as Java reads it: ASCII letters, digits, `_`, `-` and the space. Umlauts and `ß` are refused:
/// providers validating with the same Java regex would refuse them later, and many bank formats
/// transliterate or drop them. Other whitespace (tabs, line breaks) is refused too: it has no place
/// on a statement line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Purpose(String);

pub(crate) const MAX_PURPOSE_LENGTH: usize = 27;

impl Purpose {
    pub fn parse(value: String) -> Result<Purpose, String> {
        if value.trim().is_empty() {
            return Err("must not be empty".to_owned());
        }
        if value.chars().count() > MAX_PURPOSE_LENGTH {
            return Err(format!("must be at most {MAX_PURPOSE_LENGTH} characters"));
        }
        if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_- ".contains(&b)) {
            return Err("may only contain the letters A-Z and a-z (no umlauts), digits, spaces, '_' and '-'".to_owned());
        }
        Ok(Purpose(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest `notifyUrl`, as for `redirectUrl`.
pub(crate) const MAX_NOTIFY_URL_LENGTH: usize = 2082;

/// `notifyUrl`, pforte's extension of the request: where this payment's notifications go instead of
/// the service's registered `notification_url`. https to a public host: not a private, link-local,
/// unique-local, CGNAT, documentation or other special address, nor a name under `.localhost`
/// (SECURITY.md #28); with the development simulators also http to a loopback host, which
/// [`NotifyUrl::check_reach`] decides with the running configuration. At most 2082 characters; no
/// user name or password in it (they would be stored with the payment and show up wherever the URL
/// does).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct NotifyUrl(String);

impl NotifyUrl {
    pub fn parse(value: String) -> Result<NotifyUrl, String> {
        if value.chars().count() > MAX_NOTIFY_URL_LENGTH {
            return Err(format!("must be at most {MAX_NOTIFY_URL_LENGTH} characters"));
        }
        let Ok(url) = Url::parse(&value) else {
            return Err("must be an absolute https URL".to_owned());
        };
        // The widest reach pforte ever has; the running one is checked by the service.
        Reach::PublicAndLoopback.check_url(&url)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain a user name or password".to_owned());
        }
        Ok(NotifyUrl(value))
    }

    /// Whether this URL is in `reach` (in production: no loopback).
    pub fn check_reach(&self, reach: Reach) -> Result<(), &'static str> {
        let url = Url::parse(&self.0).map_err(|_| "must be an absolute https URL")?;
        reach.check_url(&url)
    }

    /// As sent (not normalised), so the echo matches the request.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The rule for a `redirectUrl` beyond its form (issue 14, finding 5): `/pay/{tx}/return` sends the
/// citizen there from pforte's origin, so it must lead back to the online service and nowhere
/// else. https (http to a loopback host only in `Reach::PublicAndLoopback`, i.e. with the
/// development simulators), on the origin (scheme, host, port) of one of the URLs the service
/// registered (`registered`: its `redirect_uris` and `post_logout_redirect_uris`).
pub(crate) fn check_redirect_url<'a>(
    value: &str,
    registered: impl IntoIterator<Item = &'a Url>,
    reach: Reach,
) -> Result<(), String> {
    let url = Url::parse(value).map_err(|_| "must be an absolute https URL".to_owned())?;
    let development = reach == Reach::PublicAndLoopback && crate::config::is_loopback_url(&url);
    if url.scheme() != "https" && !development {
        return Err("must use https".to_owned());
    }
    let origin = url.origin();
    if !registered.into_iter().any(|registered| registered.origin() == origin) {
        return Err("must be on an origin the online service registered (its redirect_uris)".to_owned());
    }
    Ok(())
}

/// A request that passed every check of the standard.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequest {
    pub request_id: Identifier,
    #[serde(serialize_with = "serialize_timestamp")]
    pub request_timestamp: DateTime<FixedOffset>,
    pub currency: Currency,
    pub gros_amount: Amount,
    pub purpose: Purpose,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// As sent (not normalised by a URL parser), checked to be an absolute http(s) URL.
    pub redirect_url: String,
    /// 1 to 99 items whose gross amounts add up to `gros_amount`.
    pub items: Vec<PaymentItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requestor: Option<Requestor>,
    /// pforte's extension (not in the standard): this payment's notification URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<NotifyUrl>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Percent, 0 to 100 (`19`, `7`, `0`), written back with the digits it was sent with.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "serialize_optional_number")]
    pub tax_rate: Option<Decimal>,
    /// A positive whole number; absent means 1 for the consistency check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_net_amount: Option<ItemAmount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_tax_amount: Option<ItemAmount>,
    pub total_net_amount: ItemAmount,
    /// Absent means 0 (a fee without VAT); kept absent so the echo matches what was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_tax_amount: Option<ItemAmount>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub booking_data: BTreeMap<String, String>,
}

impl PaymentItem {
    /// What the citizen pays for this item: total net plus total tax.
    pub fn gross(&self) -> Decimal {
        self.total_net_amount.value() + self.total_tax_amount.unwrap_or(ItemAmount::ZERO).value()
    }
}

fn serialize_timestamp<S: Serializer>(value: &DateTime<FixedOffset>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&value.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn serialize_optional_number<S: Serializer>(value: &Option<Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serialize_number(value, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> Vec<Url> {
        ["https://dienst.example.de/antrag/callback", "http://127.0.0.1:8080/demo/callback"]
            .iter()
            .map(|url| Url::parse(url).expect("a URL"))
            .collect()
    }

    fn check(value: &str, reach: Reach) -> Result<(), String> {
        check_redirect_url(value, &registered(), reach)
    }

    #[test]
    fn a_redirect_url_must_be_on_a_registered_origin() {
        assert_eq!(check("https://dienst.example.de/antrag/42/bezahlt?x=1", Reach::Public), Ok(()));
        for other in ["https://phish.example/", "https://dienst.example.de:8443/x", "https://sub.dienst.example.de/x"] {
            assert!(check(other, Reach::Public).is_err_and(|e| e.contains("registered")), "{other}");
        }
    }

    #[test]
    fn plain_http_to_loopback_only_with_the_development_simulators() {
        assert_eq!(check("http://127.0.0.1:8080/demo/bezahlt", Reach::PublicAndLoopback), Ok(()));
        assert_eq!(check("http://127.0.0.1:8080/demo/bezahlt", Reach::Public), Err("must use https".to_owned()));
        assert_eq!(check("http://dienst.example.de/x", Reach::PublicAndLoopback), Err("must use https".to_owned()));
    }

    #[test]
    fn a_notify_url_is_refused_when_not_public_and_loopback_only_in_development() {
        for url in ["https://10.0.0.1/h", "https://[fd00::1]/h", "https://a.localhost/h", "http://hooks.example/h"] {
            assert!(NotifyUrl::parse(url.to_owned()).is_err(), "{url}");
        }
        let loopback = NotifyUrl::parse("http://127.0.0.1:9/h".to_owned()).expect("a development URL");
        assert_eq!(loopback.check_reach(Reach::PublicAndLoopback), Ok(()));
        assert_eq!(loopback.check_reach(Reach::Public), Err("must be https to a public host"));
        let public = NotifyUrl::parse("https://hooks.example.de/h".to_owned()).expect("public");
        assert_eq!(public.check_reach(Reach::Public), Ok(()));
    }
}
