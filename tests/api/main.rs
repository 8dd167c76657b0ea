//! pforte's integration tests: one binary, a custom harness so every backend test runs on SQLite
//! always and on PostgreSQL when `PFORTE_TEST_POSTGRES_URL` is set (reported as ignored otherwise).
//! Each test gets its own database and a real server on a loopback port.
//!
//! A test registers itself with one line right below its function (macros in `harness.rs`):
//! - `backend_test!(name);` for `pub async fn name(ctx: TestContext) -> TestResult`: runs as
//!   `module::name::sqlite` and `module::name::postgres`;
//! - `plain_test!(name);` for `pub async fn name() -> TestResult` (no database): runs as `module::name`;
//! - `postgres_test!(name);` (PostgreSQL only), `sqlite_test!(name, only_if = ready);` (SQLite only,
//!   ignored while `ready()` is false) and `sync_test!(name);` for `pub fn name() -> Result<(), Failed>`.
//!
//! `registration::every_test_function_is_registered_and_every_registration_names_one` fails on a
//! test-shaped function without its line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Test modules are private to this binary; `pub` there only marks what other test modules use.
#![allow(unreachable_pub)]

// First, so that the registration macros are in scope in every module below.
#[macro_use]
mod harness;
mod helpers;

mod audit;
mod audit_chainer;
mod backup;
mod bookings;
mod browser;
mod browser_pages;
mod cli;
mod code_replay;
mod crash;
mod demo;
mod demo_pay;
mod fachverfahren_sim;
mod faults_db;
mod faults_db_changes;
mod faults_db_health;
mod faults_db_login;
mod faults_peers;
mod faults_peers_payments;
mod finance;
mod finance_pages;
mod finance_scenario;
mod finance_staff;
mod finance_uploads;
mod finding_references;
mod health;
mod instances;
mod interop;
mod iso20022;
mod keys;
mod ledger;
mod login;
mod logout;
mod logs;
mod metrics;
mod notification_log;
mod notify_url;
mod oidc;
mod oidc_prompt;
mod openapi;
mod pay_simulator;
mod payment_api;
mod payment_cancel;
mod payment_surface;
mod payments;
mod peer_bodies;
mod personal_data;
mod pmpayment;
mod pmpayment_adapter;
mod provider_adapter;
mod provider_instances;
mod rate_limits;
mod reconciliation;
mod recovery;
mod redirect_url;
mod refund_recovery;
mod refunds;
mod registration;
mod reload;
mod routing;
mod saml;
mod saml_company;
mod saml_idp;
mod saml_interop;
mod saml_levels;
mod saml_logout;
mod simulators;
mod status;
mod status_read_amounts;
mod tcp_proxy;
mod traces;
mod transfer;
mod transfer_callbacks;
mod transfer_end_to_end;
mod transfer_evidence;
mod transfer_interop;
mod transfer_metadata;
mod transfer_openapi;
mod transfer_receive;
mod transfer_retention;
mod transfer_sender;
mod transfer_support;
mod upstream;

use libtest_mimic::Arguments;

fn main() {
    let args = Arguments::from_args();
    logs::install_capture();
    let postgres = std::env::var("PFORTE_TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty());
    libtest_mimic::run(&args, harness::trials(postgres)).exit();
}
