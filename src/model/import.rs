//! What a finance import holds: a provider's settlement report or a bank statement.

/// The kind of a finance import; stored as `finance_imports.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportKind {
    /// A provider's settlement report (CSV).
    Settlement,
    /// A bank statement (camt.053/054).
    Bank,
}

impl ImportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Settlement => "settlement",
            ImportKind::Bank => "bank",
        }
    }

    /// The kind as stored.
    pub fn parse(text: &str) -> Option<ImportKind> {
        [ImportKind::Settlement, ImportKind::Bank].into_iter().find(|kind| kind.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_kinds_read_back_what_they_write_and_nothing_else() {
        for kind in [ImportKind::Settlement, ImportKind::Bank] {
            assert_eq!(ImportKind::parse(kind.as_str()), Some(kind));
        }
        for text in ["", "Bank", "camt", "settlements"] {
            assert_eq!(ImportKind::parse(text), None, "{text:?}");
        }
    }
}
