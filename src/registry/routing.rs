//! Routing rules of a tenant (`[[payment.rules]]`): which of several payment providers takes a
//! payment, by its amount and by the online service that creates it. The first rule whose every
//! condition holds wins; without a match the tenant's `payment.provider` takes it. The payment
//! method cannot be a condition: the citizen chooses it on the provider's pay page, after routing.

use rust_decimal::Decimal;
use serde::Deserialize;

use super::check::FileCheck;
use super::types::EntityId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingRule {
    pub provider: EntityId,
    /// Payments of at least this amount (euros).
    pub min_amount: Option<Decimal>,
    /// Payments of at most this amount (euros).
    pub max_amount: Option<Decimal>,
    /// Payments created by one of these online services (originatorId); any when empty.
    pub originators: Vec<String>,
}

impl RoutingRule {
    pub fn matches(&self, amount: Decimal, originator: &str) -> bool {
        self.min_amount.is_none_or(|min| amount >= min)
            && self.max_amount.is_none_or(|max| amount <= max)
            && (self.originators.is_empty() || self.originators.iter().any(|o| o == originator))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleFile {
    provider: String,
    /// Text, not a TOML float, so that the amount stays exact.
    min_amount: Option<String>,
    max_amount: Option<String>,
    #[serde(default)]
    originators: Vec<String>,
}

pub(crate) fn parse_rules(check: &mut FileCheck<'_>, rules: &[RuleFile]) -> Option<Vec<RoutingRule>> {
    let mut parsed = Vec::new();
    let mut valid = true;
    for (index, rule) in rules.iter().enumerate() {
        let key = |name: &str| format!("payment.rules[{index}].{name}");
        let provider = check.entity_id(&key("provider"), &rule.provider);
        let min = rule.min_amount.as_deref().map(|text| check.accept(&key("min_amount"), amount(text)));
        let max = rule.max_amount.as_deref().map(|text| check.accept(&key("max_amount"), amount(text)));
        let (min, max) = match (min, max) {
            (Some(None), _) | (_, Some(None)) => (None, None),
            (min, max) => (min.flatten(), max.flatten()),
        };
        if let (Some(low), Some(high)) = (min, max) {
            if low > high {
                check.problem(key("max_amount"), format!("must not be below min_amount ({low})"));
                valid = false;
            }
        }
        if rule.min_amount.is_none() && rule.max_amount.is_none() && rule.originators.is_empty() {
            check.problem(
                format!("payment.rules[{index}]"),
                "needs a condition (min_amount, max_amount or originators); the default is payment.provider",
            );
            valid = false;
        }
        let bad_min = rule.min_amount.is_some() && min.is_none();
        let bad_max = rule.max_amount.is_some() && max.is_none();
        match provider {
            Some(provider) if !bad_min && !bad_max => parsed.push(RoutingRule {
                provider,
                min_amount: min,
                max_amount: max,
                originators: rule.originators.clone(),
            }),
            _ => valid = false,
        }
    }
    valid.then_some(parsed)
}

/// A non-negative amount in euros with at most two decimals, e.g. `"500.00"`.
fn amount(text: &str) -> Result<Decimal, String> {
    let value: Decimal =
        text.trim().parse().map_err(|_| format!("`{text}` is not an amount in euros such as \"500.00\""))?;
    if value.is_sign_negative() || value.scale() > 2 {
        return Err(format!("`{text}` must be 0 or more, with at most two decimals"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(min: Option<&str>, max: Option<&str>, originators: &[&str]) -> RoutingRule {
        RoutingRule {
            provider: EntityId::parse("sim-pay-b").expect("id"),
            min_amount: min.map(|m| m.parse().expect("decimal")),
            max_amount: max.map(|m| m.parse().expect("decimal")),
            originators: originators.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn a_rule_matches_when_every_condition_holds() {
        let large = rule(Some("500.00"), None, &[]);
        assert!(large.matches("500.00".parse().expect("d"), "any"));
        assert!(!large.matches("499.99".parse().expect("d"), "any"));
        let band = rule(Some("10"), Some("20"), &["kfz-service"]);
        assert!(band.matches("15".parse().expect("d"), "kfz-service"));
        assert!(!band.matches("15".parse().expect("d"), "demo-service"));
        assert!(!band.matches("20.01".parse().expect("d"), "kfz-service"));
    }

    #[test]
    fn amounts_are_exact_non_negative_euros() {
        assert_eq!(amount("500.00"), Ok("500.00".parse().expect("d")));
        assert!(amount("-1").is_err());
        assert!(amount("1.005").is_err());
        assert!(amount("viel").is_err());
    }
}
