//! The vocabulary the domains and the store share: plain values with their parsing rules, no I/O.
//! The store persists these values and hands them back typed, so a status or an amount is parsed
//! once, at the database boundary, and a value that does not parse is corrupt data, never a default.
//! Nothing here imports other pforte modules.

mod import;
mod ledger;
mod period;
mod reference;
mod settlement;
mod status;
mod transfer;

pub use import::ImportKind;
pub use ledger::{Account, JournalKind};
pub use period::{berlin_time, local_date, local_time, start_of_day, Period, PeriodError};
pub use reference::{end_to_end_id, END_TO_END_ID_MAX};
pub use settlement::{DecimalSeparator, SettlementKind};
pub use status::{PaymentStatus, RefundStatus};
pub use transfer::SubmissionStatus;
