//! The words of a tenant's ledger (docs/ledger.md has the German terms): its accounts and what a
//! journal records, each with the text it is stored as. Entries are signed: debit positive, credit
//! negative; a balance is the sum, so a revenue account's balance is negative.

use std::fmt;

/// One account of a tenant's ledger.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// Forderung gegen den Zahlungsdienstleister: money a provider collected and owes the authority.
    ProviderReceivable(String),
    /// Gebührenertrag: the fees citizens paid, less refunds.
    FeeRevenue,
    /// Verbindlichkeit aus Erstattungen: refunds granted, not yet paid back by the provider.
    RefundsPayable,
    /// Aufwand für Entgelte des Zahlungsdienstleisters: what the provider kept as its fee.
    ProviderFees,
    /// Bank (Geldkonto): payouts that reached the authority's account.
    Bank,
}

const PROVIDER_RECEIVABLE: &str = "provider_receivable:";

impl Account {
    pub fn code(&self) -> String {
        match self {
            Account::ProviderReceivable(provider) => format!("{PROVIDER_RECEIVABLE}{provider}"),
            Account::FeeRevenue => "fee_revenue".to_owned(),
            Account::RefundsPayable => "refunds_payable".to_owned(),
            Account::ProviderFees => "provider_fees".to_owned(),
            Account::Bank => "bank".to_owned(),
        }
    }

    pub fn parse(code: &str) -> Option<Account> {
        match code {
            "fee_revenue" => Some(Account::FeeRevenue),
            "refunds_payable" => Some(Account::RefundsPayable),
            "provider_fees" => Some(Account::ProviderFees),
            "bank" => Some(Account::Bank),
            other => other
                .strip_prefix(PROVIDER_RECEIVABLE)
                .filter(|provider| !provider.is_empty())
                .map(|provider| Account::ProviderReceivable(provider.to_owned())),
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

/// What a journal records; stored as `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalKind {
    /// A payment settled as PAYED (also when reported after pforte's timeout).
    Paid,
    /// A refund granted to the citizen.
    Refund,
    /// The provider paid a refund back out of the money it holds.
    RefundSettled,
    /// The provider's fee from a settlement line.
    ProviderFee,
    /// The provider paid money out to the authority's bank account.
    Payout,
    /// A correction: the reversed journal's entries with their signs turned.
    Reversal,
}

impl JournalKind {
    /// Every kind, for reading stored text back.
    pub const ALL: [JournalKind; 6] = [
        JournalKind::Paid,
        JournalKind::Refund,
        JournalKind::RefundSettled,
        JournalKind::ProviderFee,
        JournalKind::Payout,
        JournalKind::Reversal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JournalKind::Paid => "paid",
            JournalKind::Refund => "refund",
            JournalKind::RefundSettled => "refund_settled",
            JournalKind::ProviderFee => "provider_fee",
            JournalKind::Payout => "payout",
            JournalKind::Reversal => "reversal",
        }
    }

    pub fn parse(text: &str) -> Option<JournalKind> {
        JournalKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_kinds_read_back_what_they_write_and_nothing_else() {
        for kind in JournalKind::ALL {
            assert_eq!(JournalKind::parse(kind.as_str()), Some(kind));
        }
        for text in ["", "PAID", "fee", "refund "] {
            assert_eq!(JournalKind::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn account_codes_read_back_as_the_same_account() {
        for account in [
            Account::ProviderReceivable("sim-pay".into()),
            Account::FeeRevenue,
            Account::RefundsPayable,
            Account::ProviderFees,
            Account::Bank,
        ] {
            assert_eq!(Account::parse(&account.code()), Some(account));
        }
        assert_eq!(Account::parse("provider_receivable:"), None);
        assert_eq!(Account::parse("cash"), None);
    }
}
