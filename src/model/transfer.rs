//! The status of a Datentransfer submission, as the store keeps it and FIT-Connect names it.

/// Where a submission stands: announced by the sender, submitted (complete, waiting for the
/// subscriber), then accepted or rejected by the subscriber, which is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionStatus {
    Announced,
    Submitted,
    Accepted,
    Rejected,
}

impl SubmissionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionStatus::Announced => "announced",
            SubmissionStatus::Submitted => "submitted",
            SubmissionStatus::Accepted => "accepted",
            SubmissionStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<SubmissionStatus> {
        [
            SubmissionStatus::Announced,
            SubmissionStatus::Submitted,
            SubmissionStatus::Accepted,
            SubmissionStatus::Rejected,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_written() {
        for status in [
            SubmissionStatus::Announced,
            SubmissionStatus::Submitted,
            SubmissionStatus::Accepted,
            SubmissionStatus::Rejected,
        ] {
            assert_eq!(SubmissionStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(SubmissionStatus::parse("Submitted"), None);
    }
}
