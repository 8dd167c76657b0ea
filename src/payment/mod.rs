//! Payments as XBezahldienste v1.0.0 defines them, as a domain without HTTP or storage: the wire
//! types with the standard's exact field names, exact money (`rust_decimal::Decimal` read from the
//! JSON text, never `f64`), the validation rules of the standard, and the `functionalCode`s a refused
//! request is answered with. The services return typed results and a [`code::PaymentError`]; the HTTP
//! edge maps each kind of failure to its status and problem+json once.

pub(crate) mod answer;
mod api;
pub(crate) mod books;
pub(crate) mod callbacks;
pub(crate) mod code;
pub(crate) mod delivery_log;
pub mod idempotency;
pub(crate) mod money;
pub mod notify;
pub(crate) mod personal;
pub mod provider;
pub(crate) mod refund;
mod refund_request;
pub(crate) mod request;
pub mod retention;
pub(crate) mod routes;
pub(crate) mod service;
pub mod signals;
pub mod state;
pub(crate) mod validate;
pub(crate) mod wire;
pub mod worker;

pub use answer::{AnswerRenderer, Created, PaymentEdge, Reply, StoredAnswer};
pub use code::{ErrorKind, FunctionalCode, PaymentError, ValidationFailure};
pub use money::{Amount, ItemAmount};
pub use request::{Currency, Identifier, NotifyUrl, PaymentItem, PaymentRequest, Purpose};
pub use validate::{check_required_booking_keys, merge_booking_defaults, parse_path_id, parse_request_body};
pub use wire::{PaymentInformation, PaymentMethod, PaymentTransaction, Requestor, Status};

#[cfg(test)]
mod tests;
