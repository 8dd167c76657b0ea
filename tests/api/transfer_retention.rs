//! Datentransfer deadlines and retention on the manual clock: each deadline just before (nothing
//! happens) and just after (it happens), pforte's SETs checked against its JWKS, two workers racing,
//! and the chunks of cut-off uploads aged out without touching an upload still streaming.

use std::sync::Arc;

use pforte::clock::ManualClock;
use pforte::transfer::{RetentionRound, RetentionWorker, NOT_FETCHED_IN_TIME};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{eventually, output_text, pforte_command, TestApp, TestContext, TestResult};
use crate::keys::any_pool;
use crate::transfer_support::*;

const DAY: i64 = 24 * 3600;
const MINUTE: i64 = 60;

/// pforte on `clock` without the workers that would race the test's rounds.
async fn app_on(ctx: &TestContext, clock: &ManualClock, settings: &[(&str, i64)]) -> anyhow::Result<TestApp> {
    let settings: Vec<(String, i64)> = settings.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    let adjust = move |f: figment::Figment| {
        let f = f.merge(("workers.transfer_retention", false)).merge(("workers.notifications", false));
        settings.into_iter().fold(f, |f, (key, value)| f.merge((key, value)))
    };
    start_with(ctx, adjust, Some("http://127.0.0.1:9/callbacks"), Arc::new(clock.clone())).await
}

fn worker(app: &TestApp) -> RetentionWorker {
    RetentionWorker::new(app.state.transfer.clone(), app.state.registry.clone())
}

/// A submitted submission to [`DESTINATION`] with one attachment: (submissionId, caseId, attachmentId).
async fn submitted(app: &TestApp) -> anyhow::Result<(String, String, String)> {
    let sender = token(app, "demo", "transfer").await?;
    let (submission, case, attachments) = announced(app, &sender, 1).await?;
    let (jwe, _) = encrypt(&keys().encryption, "enc-1", "application/pdf", b"document");
    anyhow::ensure!(upload(app, &sender, &submission, &attachments[0], jwe).await.status() == 204, "upload");
    let (metadata, _) = encrypt(&keys().encryption, "enc-1", "application/json", b"{}");
    let response = submit(app, &sender, &submission, json!({ "encryptedMetadata": metadata })).await;
    anyhow::ensure!(response.status() == 202, "submit: {}", response.text().await?);
    Ok((submission, case, attachments[0].clone()))
}

async fn count(pool: &sqlx::AnyPool, sql: &str, id: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).bind(id).fetch_one(pool).await?)
}

const CALLBACKS: &str = "SELECT COUNT(*) FROM transfer_callbacks WHERE payload LIKE '%' || $1 || '%'";
const CHUNKS: &str = "SELECT COUNT(*) FROM transfer_chunks c JOIN transfer_attachments a ON a.upload_id = c.upload_id \
                      WHERE a.submission_id = $1";
const UNNAMED_CHUNKS: &str = "SELECT COUNT(*) FROM transfer_chunks c WHERE NOT EXISTS \
                              (SELECT 1 FROM transfer_attachments a WHERE a.upload_id = c.upload_id)";

async fn unnamed_chunks(pool: &sqlx::AnyPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(UNNAMED_CHUNKS).fetch_one(pool).await?)
}

/// The last SET of a case's log, verified with pforte's JWKS, with its event's payload.
async fn last_pforte_event(app: &TestApp, case: &str, event: &str) -> anyhow::Result<(Value, Value)> {
    let reader = token(app, "demo", "transfer").await?;
    let log = event_log(app, &reader, case).await?;
    let claims = verify_pforte_set(app, log.last().map(String::as_str).unwrap_or_default()).await?;
    anyhow::ensure!(claims["iss"] == app.address, "iss: {claims}");
    anyhow::ensure!(claims["txn"] == format!("case:{case}"), "txn: {claims}");
    let payload = claims["events"][format!("{EVENTS}{event}")].clone();
    anyhow::ensure!(!payload.is_null(), "not {event}: {claims}");
    Ok((claims, payload))
}

pub async fn reminders_then_the_automatic_reject_come_on_their_days(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_on(&ctx, &clock, &[]).await?;
    let pool = any_pool(&ctx.database_url).await?;
    let (submission, case, _) = submitted(&app).await?;
    let worker = worker(&app);
    assert_eq!(count(&pool, CALLBACKS, &submission).await?, 1, "the first announcement");

    // Day 3, day 9 (each a minute before and after), then the reject at day 14.
    for (step, reminders) in [(3 * DAY - MINUTE, 2), (6 * DAY - 2 * MINUTE, 3)] {
        clock.advance_secs(step);
        assert_eq!(worker.run_once().await?, RetentionRound::default(), "just before the reminder day");
        clock.advance_secs(2 * MINUTE);
        assert_eq!(worker.run_once().await?.reminded, 1, "on the reminder day");
        assert_eq!(worker.run_once().await?.reminded, 0, "once per reminder day");
        assert_eq!(count(&pool, CALLBACKS, &submission).await?, reminders);
    }
    clock.advance_secs(5 * DAY - 2 * MINUTE);
    assert_eq!(worker.run_once().await?, RetentionRound::default(), "just before 14 days");
    clock.advance_secs(2 * MINUTE);
    assert_eq!(worker.run_once().await?.rejected, 1);
    assert_eq!(worker.run_once().await?.rejected, 0);

    let (claims, payload) = last_pforte_event(&app, &case, "reject-submission").await?;
    assert_eq!(claims["sub"], format!("submission:{submission}"));
    assert_eq!(payload["problems"][0]["type"], NOT_FETCHED_IN_TIME);
    assert_eq!(payload["problems"][0]["detail"], "The submission was not fetched and decided within 14 days.");
    let notification: String = sqlx::query_scalar(
        "SELECT payload FROM notification_outbox WHERE transaction_id = $1 AND payload LIKE '%rejected%'",
    )
    .bind(&submission)
    .fetch_one(&pool)
    .await?;
    assert_eq!(serde_json::from_str::<Value>(&notification)?["type"], "transfer.status_changed");
    // The subscriber can no longer decide.
    let subscriber = token(&app, "fachverfahren", "transfer").await?;
    let accept = decision(&keys().signing, "accept-submission", (DESTINATION, &submission, &case));
    assert_eq!(refused(post_event(&app, &subscriber, &case, &accept).await, 409).await?, "transfer_invalid_transition");
    Ok(())
}
backend_test!(reminders_then_the_automatic_reject_come_on_their_days);

pub async fn content_goes_7_days_after_the_decision_and_the_event_log_after_730(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_on(&ctx, &clock, &[]).await?;
    let pool = any_pool(&ctx.database_url).await?;
    let worker = worker(&app);
    let subscriber = token(&app, "fachverfahren", "transfer").await?;
    let mut decided = Vec::new();
    for event in ["accept-submission", "reject-submission"] {
        let (submission, case, attachment) = submitted(&app).await?;
        let set = decision(&keys().signing, event, (DESTINATION, &submission, &case));
        assert_eq!(post_event(&app, &subscriber, &case, &set).await.status(), 204);
        decided.push((submission, case, attachment));
    }
    clock.advance_secs(7 * DAY - MINUTE);
    assert_eq!(worker.run_once().await?, RetentionRound::default(), "just before 7 days");
    let subscriber = token(&app, "fachverfahren", "transfer").await?;
    let fetch = |submission: &str| app.client.get(app.url(&format!("/v1/submissions/{submission}")));
    assert_eq!(fetch(&decided[0].0).bearer_auth(&subscriber).send().await?.status(), 200);
    clock.advance_secs(2 * MINUTE);
    assert_eq!(worker.run_once().await?.content_deleted, 2);
    assert_eq!(worker.run_once().await?.content_deleted, 0);

    let subscriber = token(&app, "fachverfahren", "transfer").await?;
    for (submission, case, attachment) in &decided {
        let response = fetch(submission).bearer_auth(&subscriber).send().await?;
        assert_eq!(refused(response, 410).await?, "transfer_content_deleted");
        let download = format!("/v1/submissions/{submission}/attachments/{attachment}");
        let response = app.client.get(app.url(&download)).bearer_auth(&subscriber).send().await?;
        assert_eq!(refused(response, 410).await?, "transfer_content_deleted");
        assert_eq!(count(&pool, CHUNKS, submission).await?, 0);
        let (claims, _) = last_pforte_event(&app, case, "delete-submission").await?;
        assert_eq!(claims["sub"], format!("submission:{submission}"));
        let metadata: Option<String> =
            sqlx::query_scalar("SELECT encrypted_metadata FROM transfer_submissions WHERE submission_id = $1")
                .bind(submission)
                .fetch_one(&pool)
                .await?;
        assert_eq!(metadata, None);
    }

    // 730 days after the decision the log and the row go.
    clock.advance_secs(723 * DAY - 2 * MINUTE);
    assert_eq!(worker.run_once().await?, RetentionRound::default(), "just before 730 days");
    assert_eq!(event_log(&app, &token(&app, "demo", "transfer").await?, &decided[0].1).await?.len(), 4);
    clock.advance_secs(2 * MINUTE);
    assert_eq!(worker.run_once().await?.event_logs_deleted, 2);
    let sender = token(&app, "demo", "transfer").await?;
    for (submission, case, _) in &decided {
        let response = app.client.get(app.url(&format!("/v1/cases/{case}/events"))).bearer_auth(&sender).send().await?;
        assert_eq!(refused(response, 404).await?, "not_found");
        let rows = "SELECT COUNT(*) FROM transfer_events WHERE submission_id = $1";
        assert_eq!(count(&pool, rows, submission).await?, 0);
    }
    Ok(())
}
backend_test!(content_goes_7_days_after_the_decision_and_the_event_log_after_730);

pub async fn a_submission_never_submitted_is_deleted_after_a_day(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_on(&ctx, &clock, &[]).await?;
    let pool = any_pool(&ctx.database_url).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let (submission, case, attachments) = announced(&app, &sender, 2).await?;
    let (jwe, _) = encrypt(&keys().encryption, "enc-1", "application/pdf", b"half of it");
    assert_eq!(upload(&app, &sender, &submission, &attachments[0], jwe).await.status(), 204);
    assert_eq!(count(&pool, CHUNKS, &submission).await?, 1);
    let worker = worker(&app);
    clock.advance_secs(DAY - MINUTE);
    assert_eq!(worker.run_once().await?, RetentionRound::default(), "just before a day");
    clock.advance_secs(2 * MINUTE);
    assert_eq!(worker.run_once().await?.incomplete_deleted, 1);
    let sender = token(&app, "demo", "transfer").await?;
    let response = app.client.get(app.url(&format!("/v1/cases/{case}/events"))).bearer_auth(&sender).send().await?;
    assert_eq!(refused(response, 404).await?, "not_found");
    assert_eq!(unnamed_chunks(&pool).await?, 0, "no chunk is left");
    let rows = "SELECT COUNT(*) FROM transfer_submissions WHERE submission_id = $1";
    assert_eq!(count(&pool, rows, &submission).await?, 0);
    let (metadata, _) = encrypt(&keys().encryption, "enc-1", "application/json", b"{}");
    let late = submit(&app, &sender, &submission, json!({ "encryptedMetadata": metadata })).await;
    assert_eq!(refused(late, 404).await?, "not_found");
    Ok(())
}
backend_test!(a_submission_never_submitted_is_deleted_after_a_day);

pub async fn two_workers_racing_reject_each_submission_once(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_on(&ctx, &clock, &[]).await?;
    let pool = any_pool(&ctx.database_url).await?;
    let mut cases = Vec::new();
    for _ in 0..3 {
        cases.push(submitted(&app).await?);
    }
    clock.advance_secs(14 * DAY + MINUTE);
    let (first, second) = (worker(&app), worker(&app));
    let (a, b) = tokio::join!(first.run_once(), second.run_once());
    let (a, b) = (a?, b?);
    assert_eq!(a.rejected + b.rejected, 3, "{a:?} {b:?}");
    assert_eq!(a.reminded + b.reminded, 3, "only the latest reminder day, once: {a:?} {b:?}");
    for (submission, case, _) in &cases {
        let rejects =
            "SELECT COUNT(*) FROM transfer_events WHERE submission_id = $1 AND event_type = 'reject-submission'";
        assert_eq!(count(&pool, rejects, submission).await?, 1);
        let notes = "SELECT COUNT(*) FROM notification_outbox WHERE transaction_id = $1 AND payload LIKE '%rejected%'";
        assert_eq!(count(&pool, notes, submission).await?, 1);
        assert_eq!(event_log(&app, &token(&app, "demo", "transfer").await?, case).await?.len(), 3);
    }
    Ok(())
}
backend_test!(two_workers_racing_reject_each_submission_once);

/// Starts a chunked upload by hand and sends `first` as its first chunk; the socket stays open.
async fn start_upload(app: &TestApp, path: &str, token: &str, first: &[u8]) -> anyhow::Result<tokio::net::TcpStream> {
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/jose\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(format!("{:x}\r\n", first.len()).as_bytes()).await?;
    stream.write_all(first).await?;
    stream.write_all(b"\r\n").await?;
    Ok(stream)
}

async fn unnamed_chunks_appear(pool: &sqlx::AnyPool) -> TestResult {
    eventually(std::time::Duration::from_secs(20), "the first chunk stored", || {
        let pool = pool.clone();
        async move { Ok((unnamed_chunks(&pool).await? > 0).then_some(())) }
    })
    .await
}

const GRACE: i64 = 7200;

pub async fn a_cut_off_uploads_chunks_go_after_the_grace_period(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let settings = [("transfer.stream_timeout_secs", 2), ("transfer.orphan_upload_grace_secs", GRACE)];
    let app = app_on(&ctx, &clock, &settings).await?;
    let pool = any_pool(&ctx.database_url).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let (submission, _, attachments) = announced(&app, &sender, 1).await?;
    let path = format!("/v1/submissions/{submission}/attachments/{}", attachments[0]);
    // More than one chunk, then the body stalls until the stream timeout cuts the request off.
    let mut stream = start_upload(&app, &path, &sender, &vec![b'A'; 1536 * 1024]).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 503"), "{}", String::from_utf8_lossy(&answer));
    assert!(unnamed_chunks(&pool).await? > 0, "the cut-off upload left its chunks");

    let worker = worker(&app);
    clock.advance_secs(GRACE - MINUTE);
    assert_eq!(worker.run_once().await?, RetentionRound::default(), "just before the grace period");
    assert!(unnamed_chunks(&pool).await? > 0);
    clock.advance_secs(2 * MINUTE);
    assert_eq!(worker.run_once().await?.orphan_uploads_deleted, 1);
    assert_eq!(unnamed_chunks(&pool).await?, 0);
    Ok(())
}
backend_test!(a_cut_off_uploads_chunks_go_after_the_grace_period);

pub async fn no_upload_still_streaming_or_complete_loses_its_chunks(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_on(&ctx, &clock, &[("transfer.orphan_upload_grace_secs", GRACE)]).await?;
    let pool = any_pool(&ctx.database_url).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let (submission, _, attachments) = announced(&app, &sender, 2).await?;
    let (complete, _) = encrypt(&keys().encryption, "enc-1", "application/pdf", b"complete");
    assert_eq!(upload(&app, &sender, &submission, &attachments[0], complete).await.status(), 204);

    let path = format!("/v1/submissions/{submission}/attachments/{}", attachments[1]);
    // About 1.3 MiB of JWE: its first chunk is stored while the rest has not come yet.
    let (jwe, _) = encrypt(&keys().encryption, "enc-1", "application/pdf", &vec![7u8; 1024 * 1024]);
    let (head, rest) = jwe.as_bytes().split_at(1100 * 1024);
    let mut stream = start_upload(&app, &path, &sender, head).await?;
    unnamed_chunks_appear(&pool).await?;

    let worker = worker(&app);
    clock.advance_secs(GRACE - MINUTE);
    assert_eq!(worker.run_once().await?, RetentionRound::default(), "an upload younger than the grace period");
    stream.write_all(format!("{:x}\r\n", rest.len()).as_bytes()).await?;
    stream.write_all(rest).await?;
    stream.write_all(b"\r\n0\r\n\r\n").await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 204"), "{}", String::from_utf8_lossy(&answer));

    clock.advance_secs(2 * GRACE);
    assert_eq!(worker.run_once().await?.orphan_uploads_deleted, 0, "complete uploads are no orphans");
    assert_eq!(count(&pool, CHUNKS, &submission).await?, 1 + 2, "one chunk and two chunks");
    Ok(())
}
backend_test!(no_upload_still_streaming_or_complete_loses_its_chunks);

/// Each bad deadline is refused by `pforte check` with its key named.
pub async fn bad_deadlines_are_refused_by_check() -> TestResult {
    for (variable, value, key) in [
        ("PFORTE__TRANSFER__REJECT_AFTER_DAYS", "0", "transfer.reject_after_days"),
        ("PFORTE__TRANSFER__REMINDER_DAYS", "[9,3]", "transfer.reminder_days"),
        ("PFORTE__TRANSFER__DELETE_CONTENT_AFTER_DAYS", "0", "transfer.delete_content_after_days"),
        ("PFORTE__TRANSFER__DELETE_INCOMPLETE_AFTER_DAYS", "400", "transfer.delete_incomplete_after_days"),
        ("PFORTE__TRANSFER__EVENT_LOG_DAYS", "7", "transfer.event_log_days"),
        ("PFORTE__TRANSFER__ORPHAN_UPLOAD_GRACE_SECS", "60", "transfer.orphan_upload_grace_secs"),
        ("PFORTE__TRANSFER__RETENTION_INTERVAL_SECS", "0", "transfer.retention_interval_secs"),
    ] {
        let output = pforte_command().arg("check").env(variable, value).output()?;
        let text = output_text(&output);
        assert_eq!(output.status.code(), Some(2), "{variable}={value}: {text}");
        assert!(text.contains(key), "{variable}={value}: {text}");
    }
    Ok(())
}
plain_test!(bad_deadlines_are_refused_by_check);
