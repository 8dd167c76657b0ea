//! Tenants (`<tenants>/<id>.toml`): the authorities pforte collects payments for. The id is the
//! XBezahldienste `endPointId`, for a municipality usually its 8-digit AGS.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::check::FileCheck;
use super::files::EntityFile;
use super::routing::{parse_rules, RoutingRule, RuleFile};
use super::types::{join_key, EntityId};

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: EntityId,
    pub display_name: String,
    pub payment: TenantPayment,
    pub finance: TenantFinance,
    /// Days after a payment's last change in a final status until its payer's personal data is
    /// purged (SECURITY.md #24); `personal_data_retention_days`, default [`DEFAULT_RETENTION_DAYS`].
    pub personal_data_retention_days: u32,
}

/// Long enough for complaints, refunds and the reconciliation of a quarter; the booking data the
/// finance office must keep carry no personal data and stay.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Ten years: the longest the German retention rules ask of booking records (AO § 147).
pub(super) const MAX_RETENTION_DAYS: u32 = 3650;

fn retention_days(days: Option<i64>) -> Result<u32, String> {
    match days {
        None => Ok(DEFAULT_RETENTION_DAYS),
        Some(days) => u32::try_from(days)
            .ok()
            .filter(|d| (1..=MAX_RETENTION_DAYS).contains(d))
            .ok_or_else(|| format!("must be a whole number of days between 1 and {MAX_RETENTION_DAYS}, not {days}")),
    }
}

/// What the finance office's reconciliation needs to know about the authority.
#[derive(Debug, Clone, Default)]
pub struct TenantFinance {
    /// The account payouts arrive on; a bank statement for another account is refused on import.
    pub bank_iban: Option<iban::Iban>,
    /// Who may sign in to the finance pages in a browser, through the authority's staff identity
    /// provider; `None` leaves the browser to the token sign-in.
    pub staff: Option<StaffAccess>,
}

/// Finance access through the authority's own staff identity provider: a staff member whose claim
/// `claim` is `value`, or a list containing `value`, may act for this tenant. Several tenants may
/// name the same provider; a staff member may match more than one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffAccess {
    /// An identity provider of the registry (`providers/identity/`); checked to exist.
    pub provider: EntityId,
    /// A pforte claim name the provider's `[claims]` table maps, e.g. `groups`.
    pub claim: String,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct TenantPayment {
    /// The payment provider instance this authority's payments go to unless a rule says otherwise;
    /// checked to exist.
    pub provider: EntityId,
    /// Rules choosing another provider by amount or online service; the first match wins.
    pub rules: Vec<RoutingRule>,
    /// What the provider needs to know about this authority (e.g. mandant, bewirtschafter_nr).
    pub settings: BTreeMap<String, String>,
    /// Booking data added to every item unless the online service sends its own (e.g. Haushaltsstelle).
    pub booking_defaults: BTreeMap<String, String>,
}

impl TenantPayment {
    /// The provider a payment of `amount` created by `originator` goes to.
    pub fn provider_for(&self, amount: rust_decimal::Decimal, originator: &str) -> &EntityId {
        self.rules.iter().find(|rule| rule.matches(amount, originator)).map_or(&self.provider, |rule| &rule.provider)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantFile {
    display_name: String,
    personal_data_retention_days: Option<i64>,
    payment: PaymentFile,
    #[serde(default)]
    finance: FinanceFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FinanceFile {
    bank_iban: Option<String>,
    staff: Option<StaffFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StaffFile {
    provider: String,
    claim: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentFile {
    provider: String,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    #[serde(default)]
    booking_defaults: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

pub(crate) fn parse(file: EntityFile<TenantFile>, check: &mut FileCheck<'_>) -> Option<Tenant> {
    let EntityFile { id, contents: f, .. } = file;
    let display_name = check.non_empty("display_name", &f.display_name);
    let retention = check.accept("personal_data_retention_days", retention_days(f.personal_data_retention_days));
    let provider = check.entity_id("payment.provider", &f.payment.provider);
    let settings = non_empty_values(check, "payment.settings", f.payment.settings);
    let booking_defaults = non_empty_values(check, "payment.booking_defaults", f.payment.booking_defaults);
    let rules = parse_rules(check, &f.payment.rules);
    let bank_iban = match &f.finance.bank_iban {
        Some(text) => check.accept("finance.bank_iban", parse_iban(text)).map(Some),
        None => Some(None),
    };
    let staff = match &f.finance.staff {
        Some(staff) => {
            let provider = check.entity_id("finance.staff.provider", &staff.provider);
            let claim = check.non_empty("finance.staff.claim", &staff.claim);
            let value = check.non_empty("finance.staff.value", &staff.value);
            Some(Some(StaffAccess { provider: provider?, claim: claim?, value: value? }))
        }
        None => Some(None),
    };
    Some(Tenant {
        id,
        display_name: display_name?,
        payment: TenantPayment {
            provider: provider?,
            rules: rules?,
            settings: settings?,
            booking_defaults: booking_defaults?,
        },
        finance: TenantFinance { bank_iban: bank_iban?, staff: staff? },
        personal_data_retention_days: retention?,
    })
}

/// Accepts the printed form with spaces; checks the check digits and the country's account format.
fn parse_iban(text: &str) -> Result<iban::Iban, String> {
    text.parse::<iban::Iban>().map_err(|e| {
        let reason = match e {
            iban::ParseIbanError::InvalidBaseIban { source } => source.to_string(),
            other => other.to_string(),
        };
        format!("`{text}` is not a valid IBAN: {reason}")
    })
}

/// An empty value would be sent to the provider as if it were set; better to leave the key out.
fn non_empty_values(
    check: &mut FileCheck<'_>,
    table: &str,
    map: BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    let mut valid = true;
    for (key, value) in &map {
        if key.trim().is_empty() || value.trim().is_empty() {
            check.problem(join_key(table, key), "must have a non-empty name and value; leave unused keys out");
            valid = false;
        }
    }
    valid.then_some(map)
}
