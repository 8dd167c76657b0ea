//! Finance offices (Kassen): who may act for which authority (tokens in `access`, browser sessions of
//! staff in `staff`), the double-entry ledger of every money event, booking exports, and the
//! reconciliation of pforte's payments with the providers' settlement reports and the bank statements. A domain without HTTP or command line: the handlers
//! and the reconciliation page are in `http::finance*`, the operator's commands in `cli::finance`.

pub(crate) mod access;
pub mod export;
pub(crate) mod import;
pub(crate) mod inputs;
pub mod ledger;
pub(crate) mod period;
pub(crate) mod reconcile;
pub(crate) mod records;
pub(crate) mod report;
pub(crate) mod request;
pub(crate) mod spreadsheet;
pub mod staff;

pub use access::{FinanceAccess, FinanceAccessError, FinanceCaller};
pub use staff::StaffSessions;
