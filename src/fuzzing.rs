//! Entry points for the coverage-guided fuzz targets in `fuzz/` (issue 14, `docs/security-testing.md`).
//! Each takes bytes as they arrive from outside and runs them through the parser pforte itself uses,
//! then drops the result: a fuzz target finds panics, hangs and unbounded allocation, never a wrong
//! answer (the tests do that). Not part of pforte's API; nothing in pforte calls these.

use std::collections::BTreeMap;

use crate::registry::{Column, DecimalSeparator, EntityKind, SettlementColumns, SettlementFormat, SettlementKind};

/// An XBezahldienste payment request body (`POST /paymenttransaction/…`): JSON, the field rules and
/// the amount calculation.
pub fn payment_request(bytes: &[u8]) {
    let _ = crate::payment::validate::parse_request_body(bytes);
}

/// A bank statement a finance office uploads (camt.052/053/054).
pub fn camt(bytes: &[u8]) {
    let _ = crate::finance::import::camt::parse(bytes);
}

/// A provider's settlement report, read in each layout the simulators' provider files describe (by
/// header name with a kind column, by header name without, and by position without a header row).
pub fn settlement_csv(bytes: &[u8]) {
    for format in settlement_formats() {
        let _ = crate::finance::import::settlement::parse(bytes, &format);
    }
}

/// A form body of `/token`, `/par`, `/revoke` and `POST /authorize` (also the query of `GET /authorize`).
pub fn form(bytes: &[u8]) {
    let _ = crate::http::oidc::parse_parameters(bytes);
}

/// A `private_key_jwt` client assertion with the key set it is checked against: the input is the JWKS
/// (JSON), a newline, then the assertion. Runs every step before the signature is trusted: the header,
/// the unverified claims, choosing the key and verifying the signature.
pub fn client_assertion(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let (jwks, assertion) = text.split_once('\n').unwrap_or(("", text));
    crate::identity::client_auth::read_untrusted(jwks, assertion);
}

/// A registry file (identity provider, payment provider, tenant, client, destination), read as each kind.
pub fn registry_toml(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let kinds = [
        EntityKind::IdentityProvider,
        EntityKind::PaymentProvider,
        EntityKind::Tenant,
        EntityKind::Client,
        EntityKind::Destination,
    ];
    for kind in kinds {
        crate::registry::parse_entity_text(kind, text);
    }
}

fn settlement_formats() -> [SettlementFormat; 3] {
    let named = |name: &str| Column::Name(name.to_owned());
    let kinds = BTreeMap::from([
        ("Zahlung".to_owned(), SettlementKind::Payment),
        ("Erstattung".to_owned(), SettlementKind::Refund),
    ]);
    [
        SettlementFormat {
            delimiter: b';',
            decimal_separator: DecimalSeparator::Comma,
            header: true,
            date_format: "%d.%m.%Y".to_owned(),
            columns: SettlementColumns {
                transaction: named("Transaktions-ID"),
                gross: named("Brutto"),
                fee: named("Gebühr"),
                payout_reference: named("Auszahlungsreferenz"),
                booked_on: named("Buchungsdatum"),
                kind: Some(named("Art")),
            },
            kinds,
        },
        SettlementFormat {
            delimiter: b',',
            decimal_separator: DecimalSeparator::Point,
            header: true,
            date_format: "%Y-%m-%d".to_owned(),
            columns: SettlementColumns {
                transaction: named("transaction_id"),
                gross: named("gross_amount"),
                fee: named("fee"),
                payout_reference: named("payout_id"),
                booked_on: named("booking_date"),
                kind: None,
            },
            kinds: BTreeMap::new(),
        },
        SettlementFormat {
            delimiter: b',',
            decimal_separator: DecimalSeparator::Point,
            header: false,
            date_format: "%Y-%m-%d".to_owned(),
            columns: SettlementColumns {
                transaction: Column::Position(1),
                gross: Column::Position(2),
                fee: Column::Position(3),
                payout_reference: Column::Position(4),
                booked_on: Column::Position(5),
                kind: None,
            },
            kinds: BTreeMap::new(),
        },
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    /// The seeds of a target, but those named `refused-…` (inputs the parser must refuse).
    fn seeds(target: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
        let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.retain(|f| !f.file_name().unwrap().to_string_lossy().starts_with("refused-"));
        files.sort();
        assert!(!files.is_empty(), "no seeds for {target}");
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    }

    // The seeds (but `refused-…`) are valid inputs, so a fuzzer starts from the deep paths, not from the first refusal.
    #[test]
    fn every_seed_of_the_corpus_is_accepted_by_its_parser() {
        for seed in seeds("payment_request") {
            crate::payment::validate::parse_request_body(&seed).unwrap();
        }
        for seed in seeds("camt") {
            crate::finance::import::camt::parse(&seed).unwrap();
        }
        for seed in seeds("settlement_csv") {
            let accepted = super::settlement_formats()
                .iter()
                .filter(|format| crate::finance::import::settlement::parse(&seed, format).is_ok())
                .count();
            assert!(accepted > 0, "a settlement seed no layout reads");
        }
        for seed in seeds("form") {
            crate::http::oidc::parse_parameters(&seed).unwrap();
        }
        for seed in seeds("registry_toml") {
            let text = std::str::from_utf8(&seed).unwrap();
            let kinds = [
                super::EntityKind::IdentityProvider,
                super::EntityKind::PaymentProvider,
                super::EntityKind::Tenant,
                super::EntityKind::Client,
            ];
            let clean = kinds.into_iter().filter(|kind| crate::registry::parse_entity_text(*kind, text) == 0).count();
            assert_eq!(clean, 1, "a registry seed is valid as exactly one kind");
        }
        for seed in seeds("client_assertion") {
            // Every entry point returns nothing; it must not panic on its own seeds.
            super::client_assertion(&seed);
        }
    }
}
