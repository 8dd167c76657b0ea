//! Finance offices (Kassen): who may act for which authority, the double-entry ledger of every
//! money event, and booking exports. A domain without HTTP; handlers are in `http::finance`.

pub mod access;
pub mod export;
pub mod ledger;
pub mod period;

pub use access::{FinanceAccess, FinanceAccessError, FinanceCaller};
