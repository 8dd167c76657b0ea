//! pforte's integration tests: one binary, a custom harness so every backend test runs on SQLite
//! always and on PostgreSQL when `PFORTE_TEST_POSTGRES_URL` is set (reported as ignored otherwise).
//! Each test gets its own database and a real server on a loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit;
mod bookings;
mod cli;
mod crash;
mod demo;
mod demo_pay;
mod finance;
mod finance_pages;
mod finance_scenario;
mod health;
mod helpers;
mod instances;
mod interop;
mod keys;
mod ledger;
mod login;
mod logs;
mod notification_log;
mod notify_url;
mod oidc;
mod openapi;
mod pay_simulator;
mod payment_api;
mod payment_cancel;
mod payment_surface;
mod payments;
mod pmpayment;
mod pmpayment_adapter;
mod provider_adapter;
mod provider_instances;
mod reconciliation;
mod recovery;
mod refunds;
mod routing;
mod simulators;
mod upstream;

use helpers::{run_backend_test, BackendTest, TestBackend};
use libtest_mimic::{Arguments, Trial};

/// Registers async test functions taking a `TestContext`; each runs once per backend.
macro_rules! backend_tests {
    ($($path:path),* $(,)?) => {
        vec![$((stringify!($path), (|ctx| Box::pin($path(ctx))) as BackendTest)),*]
    };
}

/// Registers async test functions that need no database, each as one trial.
macro_rules! plain_tests {
    ($($path:path),* $(,)?) => {
        vec![$(Trial::test(stringify!($path).replace(' ', ""), || helpers::run_plain($path()))),*]
    };
}

fn main() {
    let args = Arguments::from_args();
    logs::install_capture();
    let tests: Vec<(&str, BackendTest)> = backend_tests![
        health::healthz_answers_alive_with_the_version,
        health::readyz_answers_ready_once_the_database_is_migrated,
        health::start_page_names_the_service_its_version_and_endpoints,
        health::every_response_carries_its_own_request_id,
        health::unknown_route_gets_a_404_with_the_standard_error_body,
        health::wrong_method_gets_a_405_with_the_standard_error_body,
        health::oversized_body_gets_a_413_with_the_standard_error_body,
        health::pages_carry_security_headers,
        health::in_flight_request_finishes_after_shutdown_begins,
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
        login::citizen_logs_in_and_the_service_gets_minimal_claims_at_the_required_level,
        login::company_account_delivers_organisation_claims,
        login::login_below_the_required_level_gives_access_denied_and_no_code,
        login::cancelling_at_the_provider_gives_the_service_access_denied,
        login::replayed_code_is_refused_and_revokes_the_tokens_issued_from_it,
        login::wrong_verifier_or_redirect_uri_uses_up_the_code,
        login::code_expires_after_sixty_seconds,
        login::foreign_or_replayed_state_and_another_browser_get_an_error_page,
        login::answer_arriving_at_another_providers_callback_is_refused,
        login::choice_page_lists_allowed_providers_in_german_or_english,
        login::pushed_request_leads_through_the_same_login,
        login::unreachable_provider_shows_an_error_page_with_the_way_back,
        login::logout_returns_to_a_registered_address_only,
        login::openidconnect_relying_party_logs_in_through_pforte,
        login::refresh_tokens_rotate_and_a_reused_one_ends_the_family,
        login::refresh_token_lives_no_longer_than_the_session_its_level_allows,
        login::revoked_refresh_token_no_longer_works,
        login::code_of_another_client_is_an_invalid_grant_and_subjects_differ_per_service,
        login::faulty_upstream_id_tokens_never_produce_a_code,
        demo::demo_page_offers_a_level_scopes_and_a_login_button,
        demo::citizen_logs_in_at_the_demo_service_and_sees_name_level_and_provider,
        demo::callback_with_a_wrong_state_or_in_another_browser_shows_an_error_and_redeems_nothing,
        demo::answer_from_another_issuer_is_refused,
        demo::cancelling_at_the_simulator_shows_the_refusal_on_the_demo_page,
        demo::demo_service_is_not_mounted_when_dev_simulators_is_off,
        demo_pay::a_citizen_pays_the_fee_and_sees_payed_and_a_verified_notification,
        demo_pay::the_pay_step_needs_a_login_at_the_demo_service,
        demo_pay::a_notification_signed_with_another_secret_is_refused,
        demo_pay::an_unsigned_notification_is_refused,
        pay_simulator::pay_simulator_creates_and_reads_a_transaction_with_the_standards_field_names,
        pay_simulator::pay_simulator_refuses_a_second_create_with_the_same_request_id,
        pay_simulator::pay_simulator_refuses_an_invalid_request_with_validation_error,
        pay_simulator::pay_simulator_page_shows_the_payment_in_german,
        pay_simulator::pay_simulator_payment_redirects_to_the_redirect_url_and_reads_payed,
        pay_simulator::pay_simulator_cancel_and_fail_end_the_payment,
        pay_simulator::pay_simulator_unknown_transaction_is_a_404_problem,
        pay_simulator::pay_simulator_is_not_mounted_when_dev_simulators_is_off,
        pay_simulator::the_xbezahldienste_adapter_pays_through_each_simulator_instance,
        payment_api::a_citizen_pays_a_fee_and_the_service_reads_payed,
        payment_api::each_authority_is_routed_to_its_own_provider,
        payment_api::the_standards_refusals_come_with_their_functional_codes,
        payment_api::an_idempotency_key_returns_the_first_answer_and_never_makes_two_payments,
        payment_api::the_status_worker_reads_open_payments_and_fails_expired_ones,
        payment_surface::post_and_get_echo_the_request_as_sent_without_booking_defaults,
        payment_surface::get_shows_method_and_kassenzeichen_the_provider_reported_and_paid_at_is_kept,
        payment_surface::provider_facts_are_kept_without_a_status_change_and_never_cleared,
        payment_surface::paid_after_timeout_records_when_it_was_paid,
        payment_surface::configured_lifetime_and_check_pauses_are_used,
        payment_cancel::a_payment_made_after_a_local_cancel_is_flagged_for_the_finance_office,
        payment_cancel::an_open_payment_is_canceled_notified_and_its_pay_link_leads_back,
        payment_cancel::canceling_a_paid_payment_is_a_conflict_naming_its_status,
        payment_cancel::canceling_a_canceled_payment_is_a_conflict,
        payment_cancel::canceling_an_unknown_payment_is_not_found,
        payment_cancel::another_services_payment_cannot_be_canceled,
        payment_cancel::cancel_after_the_citizen_paid_at_the_provider_records_payed_and_is_a_conflict,
        payment_cancel::a_cancel_with_parameters_is_refused,
        routing::a_rule_sends_large_payments_to_another_provider,
        provider_instances::one_oauth2_token_serves_every_payment_of_a_provider_instance,
        refunds::a_paid_payment_is_refunded_in_parts_and_the_refunds_are_listed,
        refunds::an_open_payment_cannot_be_refunded,
        refunds::a_refund_of_zero_is_refused,
        refunds::a_negative_refund_is_refused,
        refunds::a_refund_with_three_decimals_is_refused,
        refunds::a_refund_amount_sent_as_a_string_is_refused,
        refunds::refunds_adding_up_to_more_than_was_paid_are_refused,
        refunds::a_refund_replayed_with_its_idempotency_key_returns_the_first_answer,
        refunds::an_idempotency_key_reused_for_another_refund_is_refused,
        refunds::concurrent_refunds_never_pay_back_more_than_was_paid,
        notify_url::a_notification_for_a_payment_with_a_notify_url_arrives_there,
        notify_url::a_notify_url_that_is_not_a_url_is_refused,
        notify_url::an_ftp_notify_url_is_refused,
        notify_url::a_plain_http_notify_url_to_a_public_host_is_refused,
        notify_url::a_notify_url_for_a_service_without_a_notification_secret_is_refused,
        finance_scenario::every_kind_of_discrepancy_is_named_and_nothing_else,
        finance_pages::the_reconciliation_is_served_as_json_and_csv_for_the_tokens_authority_only,
        finance_pages::finance_staff_sign_in_with_their_token_and_see_the_page_with_its_chart,
        reconciliation::an_import_failing_midway_stores_nothing,
        reconciliation::a_malformed_settlement_row_refuses_the_whole_file_naming_its_line,
        reconciliation::a_malformed_bank_statement_is_refused_naming_its_element,
        reconciliation::the_same_file_twice_imports_nothing_new,
        reconciliation::a_file_over_the_size_limit_is_refused_unread,
        reconciliation::a_file_of_another_tenant_is_refused,
        reconciliation::reconciling_simulator_payments_finds_what_was_planted,
        payments::racing_paid_and_canceled_signals_end_in_exactly_one_final_status,
        payments::a_final_status_never_moves_back_and_repeats_change_nothing,
        payments::a_second_payment_with_the_same_request_id_is_refused_whole,
        payments::paid_after_timeout_is_flagged_once_and_the_status_stays_failed,
        payments::the_same_key_and_request_replays_the_first_response,
        payments::concurrent_requests_with_one_key_let_exactly_one_proceed,
        payments::a_released_or_expired_key_can_be_used_again,
        payments::a_status_change_is_notified_once_with_a_valid_signature,
        payments::a_receiver_down_for_hours_gets_the_message_later,
        payments::gone_stops_delivery_and_redelivery_puts_it_back,
        payments::delivery_gives_up_after_three_days,
        payments::two_workers_never_deliver_one_message_twice,
        ledger::a_payed_signal_books_the_payment_once_and_duplicates_post_nothing,
        ledger::paid_after_timeout_is_booked_and_the_payment_stays_flagged,
        ledger::refund_fee_payout_and_reversal_post_balanced_journals,
        ledger::a_journal_that_does_not_balance_is_refused_whole,
        ledger::the_database_refuses_to_change_or_delete_ledger_rows,
        ledger::random_payment_sequences_keep_the_ledger_balanced_and_matching,
        finance::finance_tokens_are_created_listed_and_revoked_with_the_binary,
        finance::a_token_for_an_unknown_tenant_is_refused_with_exit_2,
        finance::bookings_without_a_token_are_401,
        finance::bookings_with_an_unknown_token_are_401_and_audited,
        finance::bookings_with_a_revoked_token_are_401,
        finance::another_tenants_bookings_are_403_and_audited,
        finance::a_from_that_is_not_a_date_is_400_naming_from,
        finance::a_missing_to_is_400_naming_to,
        finance::an_impossible_date_is_400_naming_it,
        finance::to_before_from_is_400_naming_to,
        finance::a_period_over_366_days_is_400,
        finance::an_unknown_format_is_400_naming_format,
        finance::an_unknown_decimal_separator_is_400_naming_decimal,
        finance::a_bom_other_than_true_or_false_is_400_naming_bom,
        finance::a_parameter_given_twice_is_400_naming_it,
        bookings::fees_paid_through_the_simulator_are_booked_and_listed_as_csv,
        bookings::csv_with_a_decimal_point_and_a_byte_order_mark,
        bookings::json_lists_the_bookings_with_their_booking_data,
        bookings::camt054_is_well_formed_and_carries_the_purpose,
        bookings::the_same_export_twice_is_byte_identical,
        bookings::a_period_without_bookings_gives_empty_exports,
        bookings::a_few_thousand_bookings_stream_in_order,
        notification_log::a_receiver_answering_gone_is_shown_disabled_and_redelivery_reaches_it_once_back,
        notification_log::a_receiver_that_keeps_failing_is_pending_with_its_next_attempt_then_failed,
        openapi::the_served_document_is_the_shipped_one_and_documents_every_served_route,
        openapi::created_read_and_paid_transactions_match_the_document,
        openapi::cancel_and_refunds_match_the_document,
        openapi::a_validation_error_matches_the_document,
        openapi::a_calculation_error_matches_the_document,
        openapi::missing_or_wrong_credentials_match_the_document,
        openapi::acting_for_another_service_matches_the_document,
        openapi::an_unknown_endpoint_matches_the_document,
        openapi::a_repeated_request_id_matches_the_document,
        openapi::an_unknown_transaction_matches_the_document,
        openapi::an_oversized_body_matches_the_document,
        crash::kill_9_at_random_moments_loses_no_payment_state_change_or_notification,
        recovery::an_idempotency_key_left_by_a_dead_request_is_taken_over_after_the_request_timeout,
        recovery::a_creates_answer_is_stored_under_its_key_together_with_the_payment,
        recovery::a_dead_workers_lease_lets_its_messages_go,
        recovery::a_backlog_of_notifications_is_delivered_without_pausing_between_batches,
        oidc::discovery_describes_the_provider,
        oidc::unknown_client_gets_an_error_page_and_no_redirect,
        oidc::unregistered_redirect_uri_gets_an_error_page_and_no_redirect,
        oidc::invalid_requests_are_sent_back_with_error_state_and_iss,
        oidc::duplicated_parameter_is_refused,
        oidc::client_credentials_yields_a_signed_access_token,
        oidc::token_endpoint_refuses_bad_client_authentication,
        oidc::unknown_or_garbage_code_is_an_invalid_grant,
        oidc::private_key_jwt_assertions_are_checked,
        oidc::private_key_jwt_keys_are_fetched_from_the_clients_jwks_uri,
        oidc::client_that_requires_par_cannot_skip_it,
        oidc::pushed_request_uri_is_single_use_and_bound_to_its_client,
        simulators::discovery_names_the_simulator_as_issuer_with_code_flow_pkce_and_es256,
        simulators::code_flow_with_pkce_yields_a_verifiable_id_token_and_userinfo,
        simulators::company_account_takes_client_secret_post_and_delivers_organisation_claims,
        simulators::openidconnect_client_logs_in_against_the_simulator,
        simulators::cancelling_the_login_redirects_with_access_denied_state_and_iss,
        simulators::wrong_client_secret_is_refused_with_401_invalid_client,
        simulators::wrong_code_verifier_is_refused_as_invalid_grant,
        simulators::a_code_is_redeemed_once_and_its_replay_revokes_the_access_token,
        simulators::unknown_redirect_uri_shows_an_error_page_and_does_not_redirect,
        simulators::missing_pkce_challenge_is_redirected_back_as_invalid_request,
        simulators::logout_sends_the_browser_back_to_pforte_with_its_state,
        simulators::simulators_are_not_mounted_when_dev_simulators_is_off,
        pmpayment::a_citizen_pays_through_pmpayment_and_the_service_reads_payed,
        pmpayment::cancelling_at_pmpayment_ends_the_payment_canceled,
        pmpayment::failing_at_pmpayment_ends_the_payment_failed,
        pmpayment::a_create_signed_with_a_wrong_hmac_key_fails_and_nothing_is_stored,
        pmpayment::a_callback_with_a_wrong_signature_is_refused_audited_and_changes_nothing,
        pmpayment::a_callback_without_a_signature_is_refused_audited_and_changes_nothing,
        pmpayment::a_callback_older_than_five_minutes_is_refused_and_changes_nothing,
        pmpayment::a_callback_dated_more_than_five_minutes_ahead_is_refused_and_changes_nothing,
        pmpayment::a_callback_for_an_unknown_transaction_is_a_404_and_changes_nothing,
        pmpayment::a_callback_naming_another_authority_is_a_404_and_changes_nothing,
        pmpayment::a_replayed_callback_is_accepted_and_changes_nothing,
        pmpayment::a_callback_with_another_amount_flags_the_payment_and_does_not_move_it,
        pmpayment::a_signed_callback_records_what_the_status_read_says_not_what_it_claims,
        pmpayment::callbacks_for_providers_that_send_none_are_a_404,
        pmpayment::the_pmpayment_peer_is_not_mounted_when_dev_simulators_is_off,
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
    // Two instances sharing one database: PostgreSQL only (reported as ignored without it).
    let pg = postgres.clone();
    trials.push(
        Trial::test("instances::two_instances_on_one_database_do_each_piece_of_work_once::postgres", move || {
            run_backend_test(
                |ctx| Box::pin(instances::two_instances_on_one_database_do_each_piece_of_work_once(ctx)),
                TestBackend::Postgres(pg.unwrap_or_default()),
            )
        })
        .with_ignored_flag(postgres.is_none()),
    );
    // Needs Node.js packages (`npm ci` in tests/interop/openid-client); reported as ignored without them.
    let interop: BackendTest =
        |ctx| Box::pin(interop::openid_client_logs_in_validates_the_id_token_and_reads_userinfo(ctx));
    let name = "interop::openid_client_logs_in_validates_the_id_token_and_reads_userinfo::sqlite";
    trials.push(
        Trial::test(name, move || run_backend_test(interop, TestBackend::Sqlite))
            .with_ignored_flag(!interop::openid_client_installed()),
    );
    trials.push(Trial::test(
        "logs::no_personal_data_tokens_or_secrets_reach_the_logs",
        logs::no_personal_data_tokens_or_secrets_reach_the_logs,
    ));
    trials.extend(plain_tests![
        provider_adapter::creation_sends_the_standard_request_and_returns_the_pay_page,
        provider_adapter::provider_failures_become_clear_errors_within_the_timeout,
        provider_adapter::oauth2_tokens_are_fetched_once_and_reused,
        pmpayment_adapter::pmpayment_create_sends_the_signed_form_and_status_reads_map_the_codes,
        pmpayment_adapter::pmpayment_provider_down_is_unavailable,
        pmpayment_adapter::pmpayment_provider_answering_5xx_is_unavailable,
        pmpayment_adapter::pmpayment_provider_answering_garbage_is_an_invalid_answer,
        pmpayment_adapter::pmpayment_provider_too_slow_is_unavailable_within_the_timeout,
        pmpayment_adapter::pmpayment_status_with_an_unknown_code_is_an_invalid_answer,
        health::readyz_is_503_while_the_database_is_unreachable,
        cli::check_accepts_the_shipped_configuration,
        cli::check_names_file_key_and_reason_for_every_registry_problem,
        cli::serve_refuses_to_start_with_an_invalid_configuration,
        cli::serve_refuses_simulators_on_a_public_address,
        cli::help_explains_each_command,
        openapi::the_document_parses_and_every_operation_documents_its_responses,
        openapi::the_validator_rejects_bodies_and_statuses_the_document_does_not_allow,
        reconciliation::finance_help_explains_import_and_reconcile,
    ]);
    trials.extend(plain_tests![
        upstream::authorization_request_carries_state_nonce_pkce_s256_acr_values_and_the_provider_callback,
        upstream::acr_values_ask_for_the_lowest_mapped_level_at_or_above_the_required_one,
        upstream::login_yields_subject_level_and_only_the_mapped_claims,
        upstream::login_without_userinfo_endpoint_uses_the_id_token_alone,
        upstream::code_is_redeemed_with_client_secret_post,
        upstream::code_is_redeemed_with_a_private_key_jwt_from_a_jwk,
        upstream::code_is_redeemed_with_a_private_key_jwt_from_a_pem_key,
        upstream::wrong_pkce_verifier_is_refused_by_the_provider,
        upstream::id_token_signed_with_another_key_is_refused,
        upstream::id_token_from_another_issuer_is_refused,
        upstream::id_token_for_another_audience_is_refused,
        upstream::id_token_authorized_for_another_party_is_refused,
        upstream::id_token_with_another_nonce_is_refused,
        upstream::expired_id_token_is_refused,
        upstream::id_token_expired_by_less_than_the_clock_skew_is_accepted,
        upstream::unsigned_id_token_with_alg_none_is_refused,
        upstream::hs256_id_token_keyed_with_the_public_key_is_refused,
        upstream::hs256_id_token_keyed_with_the_client_secret_is_refused,
        upstream::id_token_without_subject_is_refused,
        upstream::rotated_key_is_fetched_once_and_the_login_succeeds,
        upstream::key_never_published_is_refused_and_refetched_at_most_once_a_minute,
        upstream::token_endpoint_failing_with_500_makes_the_provider_unavailable,
        upstream::hanging_token_endpoint_fails_as_unavailable_within_the_timeout,
        upstream::unreachable_provider_is_unavailable,
        upstream::discovery_naming_another_issuer_is_refused,
        upstream::garbage_discovery_document_makes_the_provider_unavailable,
        upstream::discovery_is_cached_until_the_refresh_interval_passes,
        upstream::userinfo_about_another_subject_is_refused,
        upstream::unmapped_acr_is_an_unknown_level,
        upstream::login_below_the_required_level_is_refused,
        upstream::response_with_another_state_is_refused,
        upstream::iss_parameter_of_another_issuer_is_refused_as_a_mix_up,
        upstream::missing_iss_parameter_is_refused_when_the_provider_announces_it,
        upstream::missing_iss_parameter_is_accepted_when_the_provider_does_not_announce_it,
        upstream::response_at_another_providers_callback_is_refused,
        upstream::upstream_access_denied_is_reported_as_denied,
        upstream::pending_login_survives_a_round_trip_and_never_shows_its_secrets,
        upstream::complete_can_run_on_a_spawned_task,
    ]);
    libtest_mimic::run(&args, trials).exit();
}
