//! The checks of Datentransfer's deadlines and retention periods (`transfer.*`, see
//! `transfer::retention`): each a whole number of days in a sensible range, and in an order that keeps
//! the steps apart (reminders before the automatic reject, content deleted before the event log).

use super::{Problems, TransferSettings};

/// Ten years: no period pforte keeps anything for may be longer.
const MAX_DAYS: u32 = 3650;
const MAX_REMINDERS: usize = 10;

impl TransferSettings {
    pub(super) fn check_retention(&self, problems: &mut Problems) {
        let mut push = |key: &str, reason: &str| problems.push("settings", format!("transfer.{key}"), reason);
        if !(1..=365).contains(&self.reject_after_days) {
            push("reject_after_days", "must be between 1 and 365");
        }
        let ascending = self.reminder_days.windows(2).all(|pair| pair[0] < pair[1]);
        if self.reminder_days.len() > MAX_REMINDERS
            || !ascending
            || self.reminder_days.iter().any(|day| *day == 0 || *day >= self.reject_after_days)
        {
            push(
                "reminder_days",
                "must be at most 10 days in ascending order, each at least 1 and less than transfer.reject_after_days",
            );
        }
        if !(1..=MAX_DAYS).contains(&self.delete_content_after_days) {
            push("delete_content_after_days", "must be between 1 and 3650");
        }
        if !(1..=365).contains(&self.delete_incomplete_after_days) {
            push("delete_incomplete_after_days", "must be between 1 and 365");
        }
        if self.event_log_days <= self.delete_content_after_days || self.event_log_days > MAX_DAYS {
            push("event_log_days", "must be more than transfer.delete_content_after_days and at most 3650");
        }
        if self.orphan_upload_grace_secs <= self.stream_timeout_secs {
            push("orphan_upload_grace_secs", "must be longer than transfer.stream_timeout_secs");
        }
        if !(1..=86_400).contains(&self.retention_interval_secs) {
            push("retention_interval_secs", "must be between 1 and 86400");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(adjust: impl FnOnce(&mut TransferSettings)) -> Vec<String> {
        let mut settings = TransferSettings::default();
        adjust(&mut settings);
        let mut problems = Problems::default();
        settings.check_retention(&mut problems);
        problems.0.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn the_defaults_are_fit_connects_and_pass() {
        let settings = TransferSettings::default();
        assert_eq!(settings.reminder_days, [3, 9]);
        assert_eq!(
            (settings.reject_after_days, settings.delete_content_after_days, settings.delete_incomplete_after_days),
            (14, 7, 1)
        );
        assert_eq!(settings.event_log_days, 730);
        assert!(problems_of(|_| {}).is_empty());
    }

    #[test]
    fn each_bad_value_names_its_key() {
        let key = |k: &str| vec![format!("transfer.{k}")];
        assert_eq!(problems_of(|s| s.reject_after_days = 400), key("reject_after_days"));
        assert_eq!(problems_of(|s| s.reminder_days = vec![9, 3]), key("reminder_days"));
        assert_eq!(problems_of(|s| s.reminder_days = vec![3, 3]), key("reminder_days"));
        assert_eq!(problems_of(|s| s.reminder_days = vec![0]), key("reminder_days"));
        assert_eq!(problems_of(|s| s.reminder_days = vec![3, 14]), key("reminder_days"));
        assert_eq!(problems_of(|s| s.delete_content_after_days = 0), key("delete_content_after_days"));
        assert_eq!(problems_of(|s| s.delete_incomplete_after_days = 0), key("delete_incomplete_after_days"));
        assert_eq!(problems_of(|s| s.event_log_days = 7), key("event_log_days"));
        assert_eq!(problems_of(|s| s.orphan_upload_grace_secs = 3600), key("orphan_upload_grace_secs"));
        assert_eq!(problems_of(|s| s.retention_interval_secs = 0), key("retention_interval_secs"));
        assert!(problems_of(|s| s.reminder_days = vec![]).is_empty(), "no reminders is allowed");
    }
}
