//! Finance offices (Kassen): who may act for which authority, the double-entry ledger of every
//! money event, booking exports, and the reconciliation of pforte's payments with the providers'
//! settlement reports and the bank statements. A domain without HTTP; handlers are in `http::finance`.

pub mod access;
pub mod commands;
pub mod export;
pub mod import;
pub mod inputs;
pub mod ledger;
pub mod page;
pub mod period;
pub mod reconcile;
pub mod records;
pub mod report;
pub mod request;

pub use access::{FinanceAccess, FinanceAccessError, FinanceCaller};
