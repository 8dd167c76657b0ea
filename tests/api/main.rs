//! pforte's integration tests: one binary, a custom harness so every backend test runs on SQLite
//! always and on PostgreSQL when `PFORTE_TEST_POSTGRES_URL` is set (reported as ignored otherwise).
//! Each test gets its own database and a real server on a loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit;
mod cli;
mod health;
mod helpers;
mod keys;

use helpers::{run_backend_test, BackendTest, TestBackend};
use libtest_mimic::{Arguments, Trial};

/// Registers async test functions taking a `TestContext`; each runs once per backend.
macro_rules! backend_tests {
    ($($path:path),* $(,)?) => {
        vec![$((stringify!($path), (|ctx| Box::pin($path(ctx))) as BackendTest)),*]
    };
}

fn main() {
    let args = Arguments::from_args();
    let tests: Vec<(&str, BackendTest)> = backend_tests![
        health::healthz_answers_alive_with_the_version,
        health::readyz_answers_ready_once_the_database_is_migrated,
        health::start_page_names_the_service_its_version_and_endpoints,
        health::every_response_carries_its_own_request_id,
        health::unknown_route_gets_a_404_with_the_standard_error_body,
        health::wrong_method_gets_a_405_with_the_standard_error_body,
        health::oversized_body_gets_a_413_with_the_standard_error_body,
        health::pages_carry_security_headers,
        keys::first_start_creates_one_es256_key_and_publishes_it,
        keys::rotation_keeps_the_old_key_published_until_the_overlap_ends,
        keys::private_keys_are_stored_encrypted_under_the_master_key,
        keys::rotation_is_recorded_in_the_audit_log,
        keys::rsa_keys_have_3072_bits_and_sign_verifiably,
        audit::chain_of_appended_events_verifies,
        audit::database_refuses_to_update_or_delete_audit_rows,
        audit::altered_row_is_named_as_the_first_broken_one,
        audit::removed_row_is_detected,
        audit::concurrent_appends_form_one_unbroken_chain,
        audit::event_rolled_back_with_its_transaction_leaves_no_trace,
        cli::migrate_creates_the_schema_and_is_idempotent,
        cli::keys_rotate_adds_a_key_and_reports_the_retired_one,
        cli::audit_verify_passes_then_names_a_tampered_row,
        cli::serve_stops_cleanly_on_sigterm,
    ];
    let postgres = std::env::var("PFORTE_TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty());
    let mut trials = Vec::new();
    for (name, test) in tests {
        let name = name.replace(' ', "");
        trials.push(Trial::test(format!("{name}::sqlite"), move || run_backend_test(test, TestBackend::Sqlite)));
        let pg = postgres.clone();
        trials.push(
            Trial::test(format!("{name}::postgres"), move || {
                run_backend_test(test, TestBackend::Postgres(pg.unwrap_or_default()))
            })
            .with_ignored_flag(postgres.is_none()),
        );
    }
    trials.extend([
        Trial::test("health::readyz_is_503_while_the_database_is_unreachable", || {
            helpers::run_plain(health::readyz_is_503_while_the_database_is_unreachable())
        }),
        Trial::test("cli::check_accepts_the_shipped_configuration", || {
            helpers::run_plain(cli::check_accepts_the_shipped_configuration())
        }),
        Trial::test("cli::check_names_file_key_and_reason_for_every_registry_problem", || {
            helpers::run_plain(cli::check_names_file_key_and_reason_for_every_registry_problem())
        }),
        Trial::test("cli::serve_refuses_to_start_with_an_invalid_configuration", || {
            helpers::run_plain(cli::serve_refuses_to_start_with_an_invalid_configuration())
        }),
        Trial::test("cli::serve_refuses_simulators_on_a_public_address", || {
            helpers::run_plain(cli::serve_refuses_simulators_on_a_public_address())
        }),
        Trial::test("cli::help_explains_each_command", || helpers::run_plain(cli::help_explains_each_command())),
    ]);
    libtest_mimic::run(&args, trials).exit();
}
