//! pforte: an identity and payment broker for public-sector online services.

pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
#[cfg(feature = "simulators")]
pub mod dev;
pub mod finance;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod http;
pub mod http_client;
pub mod identity;
pub mod keys;
pub mod model;

pub mod payment;
pub mod registry;
pub mod store;
pub mod telemetry;
pub mod transfer;
