//! What a finance office asks of a reconciliation, as validated values: the tenant, the period, the
//! representation it wants, and which findings to show. The edges read these from wherever the
//! office typed them (`http::finance_reports` from query parameters); this module knows no HTTP.

use super::reconcile::Period;
use super::report::{Category, Finding};

/// How the report is to be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportFormat {
    Json,
    Csv,
    Html,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportRequest {
    pub tenant: String,
    pub period: Period,
    pub format: ReportFormat,
    pub filter: FindingFilter,
}

/// Which findings the office wants to see; the default shows all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FindingFilter {
    pub category: Option<Category>,
    /// Shown are findings whose subject or evidence contains this text (letter case ignored).
    pub text: Option<String>,
}

impl FindingFilter {
    pub(crate) fn shows(&self, finding: &Finding) -> bool {
        if self.category.is_some_and(|c| c != finding.category) {
            return false;
        }
        let Some(text) = &self.text else { return true };
        let wanted = text.to_lowercase();
        [
            finding.subject.clone(),
            finding.provider_reference(),
            finding.kassenzeichen(),
            finding.pforte_text(),
            finding.settlement_text(),
            finding.bank_text(),
            finding.amounts_text(),
        ]
        .iter()
        .any(|field| field.to_lowercase().contains(&wanted))
    }
}
