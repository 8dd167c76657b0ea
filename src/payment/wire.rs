//! XBezahldienste v1.0.0 on the wire: the request body as it arrives (before any check) and the
//! transaction pforte answers with. Field names are the standard's, `grosAmount` (sic) included.
//!
//! Unknown request fields are ignored, not refused: clients of a standard may send extensions or
//! fields of a later version, and refusing them would break a client that works elsewhere. They are
//! not echoed back either.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::money::optional_number;
use super::request::PaymentRequest;

/// The POST body as parsed, every field optional so validation can name all missing ones at once.
/// Numbers are exact decimals read from the JSON text (see `money`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaymentRequestInput {
    pub request_id: Option<String>,
    pub request_timestamp: Option<String>,
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "optional_number")]
    pub gros_amount: Option<Decimal>,
    pub purpose: Option<String>,
    pub description: Option<String>,
    pub redirect_url: Option<String>,
    pub items: Option<Vec<PaymentItemInput>>,
    pub requestor: Option<Requestor>,
    /// pforte's extension: where this payment's notifications go.
    pub notify_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaymentItemInput {
    pub id: Option<String>,
    pub reference: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "optional_number")]
    pub tax_rate: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_number")]
    pub quantity: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_number")]
    pub single_net_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_number")]
    pub single_tax_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_number")]
    pub total_net_amount: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_number")]
    pub total_tax_amount: Option<Decimal>,
    pub booking_data: Option<BTreeMap<String, String>>,
}

/// The payer. Personal data: kept only as long as the flow needs it, never logged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requestor {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_organization: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_name: Option<String>,
    /// Passed through as sent: the reference does not fix the address structure and clients differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<serde_json::Value>,
}

/// The answer of POST and GET: the request as accepted and what pforte knows about the payment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentTransaction {
    pub payment_request: PaymentRequest,
    pub payment_information: PaymentInformation,
}

/// `paymentInformation`. Deserialize reads a provider's answer; Serialize writes pforte's, where
/// `transactionRedirectUrl` appears only while the status is INITIAL (the pay page is useless after).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentInformation {
    pub transaction_url: String,
    pub transaction_redirect_url: Option<String>,
    pub transaction_id: String,
    /// The business reference, typically the Kassenzeichen; providers may set it only once paid.
    pub transaction_reference: Option<String>,
    pub transaction_timestamp: Option<DateTime<FixedOffset>>,
    pub payment_method: Option<PaymentMethod>,
    pub payment_method_detail: Option<String>,
    pub status: Status,
    pub status_detail: Option<String>,
}

impl Serialize for PaymentInformation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Shown<'a> {
            transaction_url: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            transaction_redirect_url: Option<&'a str>,
            transaction_id: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            transaction_reference: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            transaction_timestamp: Option<&'a DateTime<FixedOffset>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            payment_method: Option<&'a PaymentMethod>,
            #[serde(skip_serializing_if = "Option::is_none")]
            payment_method_detail: Option<&'a str>,
            status: Status,
            #[serde(skip_serializing_if = "Option::is_none")]
            status_detail: Option<&'a str>,
        }
        // A method outside the standard's list goes out as OTHER; its name survives in the detail.
        let unlisted = match &self.payment_method {
            Some(PaymentMethod::Unlisted(name)) => Some(name.as_str()),
            _ => None,
        };
        Shown {
            transaction_url: &self.transaction_url,
            transaction_redirect_url: self
                .transaction_redirect_url
                .as_deref()
                .filter(|_| self.status == Status::Initial),
            transaction_id: &self.transaction_id,
            transaction_reference: self.transaction_reference.as_deref(),
            transaction_timestamp: self.transaction_timestamp.as_ref(),
            payment_method: self.payment_method.as_ref(),
            payment_method_detail: self.payment_method_detail.as_deref().or(unlisted),
            status: self.status,
            status_detail: self.status_detail.as_deref(),
        }
        .serialize(serializer)
    }
}

/// The standard's status model (`PAYED` sic), shared with the store: see `crate::model`.
pub use crate::model::PaymentStatus as Status;

/// `paymentMethod`. Providers are seen to send values beyond the list; such a value is kept as
/// `Unlisted` (for logs and reconciliation) and written to online services as `OTHER` with the name
/// in `paymentMethodDetail`, so clients only ever see the standard's values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PaymentMethod {
    CreditCard,
    PayPal,
    Giropay,
    Paydirect,
    Other,
    Unlisted(String),
}

impl PaymentMethod {
    pub fn as_str(&self) -> &str {
        match self {
            PaymentMethod::CreditCard => "CREDITCARD",
            PaymentMethod::PayPal => "PAYPAL",
            PaymentMethod::Giropay => "GIROPAY",
            PaymentMethod::Paydirect => "PAYDIRECT",
            PaymentMethod::Other | PaymentMethod::Unlisted(_) => "OTHER",
        }
    }

    /// The name as the provider sent it (an unlisted method by its own name), for storage.
    pub fn name(&self) -> &str {
        match self {
            PaymentMethod::Unlisted(name) => name,
            listed => listed.as_str(),
        }
    }

    pub fn parse(value: &str) -> PaymentMethod {
        match value {
            "CREDITCARD" => PaymentMethod::CreditCard,
            "PAYPAL" => PaymentMethod::PayPal,
            "GIROPAY" => PaymentMethod::Giropay,
            "PAYDIRECT" => PaymentMethod::Paydirect,
            "OTHER" => PaymentMethod::Other,
            other => PaymentMethod::Unlisted(other.to_owned()),
        }
    }
}

impl Serialize for PaymentMethod {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PaymentMethod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PaymentMethod, D::Error> {
        String::deserialize(deserializer).map(|value| PaymentMethod::parse(&value))
    }
}
