//! How a payment's status may change (SECURITY.md #18): only `INITIAL` moves, to exactly one final
//! status, and a final status never moves again. Duplicate, late and out-of-order signals change
//! nothing, with one exception the finance office must see: a provider reporting PAYED for a payment
//! pforte itself closed (failed for timeout, or cancelled for the online service without the
//! provider's word) is recorded as paid afterwards, never lost.

use super::wire::Status;

/// Where a status signal came from; kept with every recorded change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The provider told pforte (callback), or pforte asked it (status read).
    Provider,
    /// The online service cancelled the payment.
    Client,
    /// pforte's expiry: no final answer from the provider in time.
    Timeout,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Provider => "provider",
            Source::Client => "client",
            Source::Timeout => "timeout",
        }
    }
}

/// What a signal does to a payment in status `current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Move from INITIAL to this final status (compare-and-set on INITIAL).
    Move(Status),
    /// The provider says PAYED after pforte closed the payment itself (timeout, or a cancel the
    /// provider did not take part in): the status stays (the online service was told), and the
    /// payment is flagged for the finance office.
    PaidAfterTimeout,
    /// Nothing changes: a repeat of the current status, a signal after a final status, or INITIAL.
    Ignore,
}

/// Decides what `signal` from `source` does to a payment currently in `current`.
/// `closed_by_pforte` says whether a final status came from pforte itself (its expiry, or a cancel
/// for the online service) rather than from the provider.
pub fn decide(current: Status, closed_by_pforte: bool, signal: Status, source: Source) -> Decision {
    match (current, signal) {
        (_, Status::Initial) => Decision::Ignore,
        (Status::Initial, final_status) => match (source, final_status) {
            // A client can only cancel; an expiry can only fail.
            (Source::Client, Status::Canceled) | (Source::Timeout, Status::Failed) | (Source::Provider, _) => {
                Decision::Move(final_status)
            }
            _ => Decision::Ignore,
        },
        (Status::Failed | Status::Canceled, Status::Payed) if closed_by_pforte && source == Source::Provider => {
            Decision::PaidAfterTimeout
        }
        _ => Decision::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINAL: [Status; 3] = [Status::Payed, Status::Canceled, Status::Failed];

    #[test]
    fn initial_moves_to_any_final_status_the_provider_reports() {
        for status in FINAL {
            assert_eq!(decide(Status::Initial, false, status, Source::Provider), Decision::Move(status));
        }
    }

    #[test]
    fn a_final_status_never_moves_again() {
        for current in FINAL {
            for signal in [Status::Initial, Status::Payed, Status::Canceled, Status::Failed] {
                for source in [Source::Provider, Source::Client, Source::Timeout] {
                    let decision = decide(current, false, signal, source);
                    assert_eq!(decision, Decision::Ignore, "{current:?} <- {signal:?} from {source:?}");
                }
            }
        }
    }

    #[test]
    fn clients_can_only_cancel_and_expiry_can_only_fail() {
        assert_eq!(decide(Status::Initial, false, Status::Canceled, Source::Client), Decision::Move(Status::Canceled));
        assert_eq!(decide(Status::Initial, false, Status::Payed, Source::Client), Decision::Ignore);
        assert_eq!(decide(Status::Initial, false, Status::Failed, Source::Timeout), Decision::Move(Status::Failed));
        assert_eq!(decide(Status::Initial, false, Status::Payed, Source::Timeout), Decision::Ignore);
    }

    #[test]
    fn paid_after_a_timeout_is_flagged_not_lost_and_not_moved() {
        assert_eq!(decide(Status::Failed, true, Status::Payed, Source::Provider), Decision::PaidAfterTimeout);
        assert_eq!(decide(Status::Failed, false, Status::Payed, Source::Provider), Decision::Ignore);
        assert_eq!(decide(Status::Canceled, false, Status::Payed, Source::Provider), Decision::Ignore);
    }

    #[test]
    fn paid_after_a_local_cancel_is_flagged_not_lost_and_not_moved() {
        assert_eq!(decide(Status::Canceled, true, Status::Payed, Source::Provider), Decision::PaidAfterTimeout);
        assert_eq!(decide(Status::Canceled, true, Status::Failed, Source::Provider), Decision::Ignore);
        assert_eq!(decide(Status::Canceled, true, Status::Payed, Source::Client), Decision::Ignore);
    }
}
