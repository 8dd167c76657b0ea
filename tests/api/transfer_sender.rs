//! The sender's side of FIT-Connect beyond the basics: its own callback (`callback: {url, secret}` in
//! the announcement, told of new events by a `new-events` message signed with HMAC-SHA512 under its
//! secret, checked here with OpenSSL, and retried), the secret kept sealed, and follow-up submissions
//! in an existing case.

use std::sync::Arc;

use pforte::clock::ManualClock;
use serde_json::{json, Value};

use crate::helpers::{eventually, TestApp, TestContext, TestResult};
use crate::transfer_support::*;

const SENDER_SECRET: &str = "the-online-services-own-callback-secret-0123456789";
const NEW_EVENTS: &str = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-events";
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

type Log = CallbackLog;

/// Waits until `log` holds at least `n` messages and returns them.
async fn calls(log: &Log, n: usize) -> anyhow::Result<Vec<ReceivedCallback>> {
    eventually(WAIT, &format!("{n} sender callback(s)"), || {
        let log = log.clone();
        async move { Ok(Some(log.lock().expect("log").clone()).filter(|calls| calls.len() >= n)) }
    })
    .await
}

async fn announce_body(app: &TestApp, token: &str, body: Value) -> anyhow::Result<reqwest::Response> {
    Ok(app.client.post(app.url("/v1/submissions")).bearer_auth(token).json(&body).send().await?)
}

fn announcement(destination: &str, extra: Value) -> Value {
    let mut body = json!({
        "destinationId": destination,
        "announcedAttachments": [],
        "serviceType": { "name": "Bauantrag", "identifier": SERVICE },
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

/// Announces with `extra` members and submits metadata only; returns (submissionId, caseId).
async fn announce_and_submit(app: &TestApp, token: &str, extra: Value) -> anyhow::Result<(String, String)> {
    let response = announce_body(app, token, announcement(DESTINATION, extra)).await?;
    anyhow::ensure!(response.status() == 201, "announce: {}", response.text().await?);
    let body: Value = response.json().await?;
    let (submission, case) = (body["submissionId"].as_str().unwrap_or_default(), body["caseId"].as_str());
    let (metadata, _) = encrypt(&keys().encryption, "enc-1", "application/json", b"{}");
    let response = submit(app, token, submission, json!({ "encryptedMetadata": metadata })).await;
    anyhow::ensure!(response.status() == 202, "submit: {}", response.text().await?);
    Ok((submission.to_owned(), case.unwrap_or_default().to_owned()))
}

fn new_events(submission: &str, case: &str) -> Value {
    json!({
        "type": NEW_EVENTS,
        "submissions": [{ "destinationId": DESTINATION, "submissionId": submission, "caseId": case }],
    })
}

pub async fn a_sender_with_a_callback_is_told_of_new_events_after_submit_and_after_the_accept(
    ctx: TestContext,
) -> TestResult {
    let (url, received) = callback_receiver("/fit-connect/events", SENDER_SECRET, 0).await?;
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = start_with(&ctx, |f| f, None, Arc::new(clock.clone())).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let callback = json!({ "callback": { "url": url, "secret": SENDER_SECRET } });
    let (submission, case) = announce_and_submit(&app, &sender, callback).await?;

    let first = calls(&received, 1).await?;
    assert!(first[0].signed, "the HMAC does not verify under the sender's secret");
    assert_eq!(first[0].timestamp, pforte::clock::Clock::now_millis(&clock) / 1000);
    assert_eq!(first[0].body, new_events(&submission, &case));

    let subscriber = token(&app, "fachverfahren", "transfer").await?;
    let accept = decision(&keys().signing, "accept-submission", (DESTINATION, &submission, &case));
    assert_eq!(post_event(&app, &subscriber, &case, &accept).await.status(), 204);
    let both = calls(&received, 2).await?;
    assert!(both[1].signed);
    assert_eq!(both[1].body, new_events(&submission, &case));
    // The event log is what the callback points to: the accept is there.
    assert_eq!(event_log(&app, &sender, &case).await?.last(), Some(&accept));

    // The secret is write-only: sealed in the database, in no log line; the URL is stored as given.
    app.stop().await?;
    let logs = crate::logs::captured_logs();
    assert!(!logs.contains(SENDER_SECRET), "the sender's callback secret is in the log");
    let (secret_found, url_found) = crate::transfer::search_database(&ctx, SENDER_SECRET, &url).await?;
    assert!(url_found, "the search must see the stored callback URL, or it proves nothing");
    assert!(!secret_found, "the sender's callback secret is in the database in plain");
    Ok(())
}
backend_test!(a_sender_with_a_callback_is_told_of_new_events_after_submit_and_after_the_accept);

pub async fn an_announcement_with_a_bad_callback_is_refused_with_a_clear_problem(ctx: TestContext) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let short = "s".repeat(31);
    let long = "s".repeat(513);
    let cases = [
        (json!({ "url": "http://sender.example.org/cb", "secret": SENDER_SECRET }), "callback.url"),
        (json!({ "url": "https://10.1.2.3/cb", "secret": SENDER_SECRET }), "callback.url"),
        (json!({ "url": "https://sender.localhost/cb", "secret": SENDER_SECRET }), "callback.url"),
        (json!({ "url": "not a url", "secret": SENDER_SECRET }), "callback.url"),
        (json!({ "url": "https://sender.example.org/cb", "secret": short }), "callback.secret must have 32 to 512"),
        (json!({ "url": "https://sender.example.org/cb", "secret": long }), "callback.secret must have 32 to 512"),
        (json!({ "url": "https://sender.example.org/cb" }), "missing field `secret`"),
    ];
    for (callback, expected) in cases {
        let response = announce_body(&app, &sender, announcement(DESTINATION, json!({ "callback": callback }))).await?;
        assert_eq!(response.status(), 400, "{callback}");
        let body: Value = response.json().await?;
        let detail = body["detail"].as_str().unwrap_or_default();
        assert_eq!(body["code"], "bad_request", "{body}");
        assert!(detail.contains(expected), "{callback}: {detail}");
        for secret in [SENDER_SECRET, &short, &long] {
            assert!(!detail.contains(secret), "the secret is in the answer: {detail}");
        }
    }
    // Nothing was announced.
    let (_, case, _) = announced(&app, &sender, 0).await?;
    assert_eq!(event_log(&app, &sender, &case).await?.len(), 1);
    app.stop().await
}
backend_test!(an_announcement_with_a_bad_callback_is_refused_with_a_clear_problem);

pub async fn a_senders_failing_callback_is_tried_again_later(ctx: TestContext) -> TestResult {
    let (url, received) = callback_receiver("/fit-connect/events", SENDER_SECRET, 1).await?;
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = start_with(&ctx, |f| f, None, Arc::new(clock.clone())).await?;
    let sender = token(&app, "demo", "transfer").await?;
    announce_and_submit(&app, &sender, json!({ "callback": { "url": url, "secret": SENDER_SECRET } })).await?;
    calls(&received, 1).await?;
    // Not again before the pause of 30 s is over, then signed anew.
    clock.advance_secs(10);
    assert!(eventually(std::time::Duration::from_secs(2), "an early retry", || {
        let received = received.clone();
        async move { Ok((received.lock().expect("log").len() >= 2).then_some(())) }
    })
    .await
    .is_err());
    clock.advance_secs(25);
    let both = calls(&received, 2).await?;
    assert!(both.iter().all(|c| c.signed));
    assert_eq!(both[0].body, both[1].body);
    assert!(both[1].timestamp >= both[0].timestamp + 30, "signed anew at the retry: {both:?}");
    app.stop().await
}
backend_test!(a_senders_failing_callback_is_tried_again_later);

pub async fn a_follow_up_submission_joins_the_case_and_its_events_follow_in_order(ctx: TestContext) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let subscriber = token(&app, "fachverfahren", "transfer").await?;
    let (first, case) = announce_and_submit(&app, &sender, json!({})).await?;
    let accept = decision(&keys().signing, "accept-submission", (DESTINATION, &first, &case));
    assert_eq!(post_event(&app, &subscriber, &case, &accept).await.status(), 204);

    let (second, second_case) = announce_and_submit(&app, &sender, json!({ "caseId": case })).await?;
    assert_eq!(second_case, case);
    assert_ne!(second, first);
    // The subscriber decides the follow-up by naming it in its SET's sub.
    let reject = decision(&keys().signing, "reject-submission", (DESTINATION, &second, &case));
    assert_eq!(post_event(&app, &subscriber, &case, &reject).await.status(), 204);
    // The first stays decided: a second decision about it is still a conflict.
    let again = decision(&keys().signing, "reject-submission", (DESTINATION, &first, &case));
    assert_eq!(refused(post_event(&app, &subscriber, &case, &again).await, 409).await?, "transfer_invalid_transition");

    let log = event_log(&app, &sender, &case).await?;
    let seen: Vec<(String, String)> = log
        .iter()
        .map(|token| {
            let claims = claims(token);
            let event = claims["events"].as_object().and_then(|e| e.keys().next().cloned()).unwrap_or_default();
            (claims["sub"].as_str().unwrap_or_default().to_owned(), event.trim_start_matches(EVENTS).to_owned())
        })
        .collect();
    let (a, b) = (format!("submission:{first}"), format!("submission:{second}"));
    let expected = [
        (&a, "create-submission"),
        (&a, "submit-submission"),
        (&a, "accept-submission"),
        (&b, "create-submission"),
        (&b, "submit-submission"),
        (&b, "reject-submission"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(s, e)| ((*s).clone(), (*e).to_owned())).collect();
    assert_eq!(seen, expected);
    app.stop().await
}
backend_test!(a_follow_up_submission_joins_the_case_and_its_events_follow_in_order);

pub async fn a_follow_up_in_another_senders_case_or_to_another_destination_is_refused(ctx: TestContext) -> TestResult {
    let clients = ctx.clients_with(&[
        ("fachverfahren", client_file("fachverfahren", "")),
        ("fachverfahren-2", client_file("fachverfahren-2", "")),
        ("second-service", client_file("second-service", "\"03241001\"")),
    ]);
    let app = start(&ctx, |f| f.merge(("registry.clients", clients))).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let (_, case) = announce_and_submit(&app, &sender, json!({})).await?;

    // Another sender of the same authority: 403, the same answer as for a case that does not exist.
    let second = token(&app, "second-service", "transfer").await?;
    let mut details = Vec::new();
    for case in [case.clone(), uuid::Uuid::new_v4().to_string()] {
        let response = announce_body(&app, &second, announcement(DESTINATION, json!({ "caseId": case }))).await?;
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await?;
        assert_eq!(body["code"], "forbidden");
        details.push(body["detail"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(details[0], details[1], "the answer must not tell whether the case exists");
    assert!(details[0].contains("caseId is no case of this client"), "{}", details[0]);

    // The same sender, another destination: 422.
    let response = announce_body(&app, &sender, announcement(OTHER_DESTINATION, json!({ "caseId": case }))).await?;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await?;
    assert_eq!(body["code"], "transfer_destination_refuses");
    assert!(body["detail"].as_str().unwrap_or_default().contains("the case's destination"), "{body}");
    // Neither left a submission in the case.
    assert_eq!(event_log(&app, &sender, &case).await?.len(), 2);
    app.stop().await
}
backend_test!(a_follow_up_in_another_senders_case_or_to_another_destination_is_refused);

pub async fn the_retention_workers_reject_and_deletion_reach_the_senders_callback(ctx: TestContext) -> TestResult {
    const DAY: i64 = 24 * 3600;
    let (url, received) = callback_receiver("/fit-connect/events", SENDER_SECRET, 0).await?;
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = start_with(&ctx, |f| f, None, Arc::new(clock.clone())).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let callback = json!({ "callback": { "url": url, "secret": SENDER_SECRET } });
    let (submission, case) = announce_and_submit(&app, &sender, callback).await?;
    calls(&received, 1).await?;
    let worker = pforte::transfer::RetentionWorker::new(app.state.transfer.clone(), app.state.registry.clone());

    // Undecided for 14 days: pforte rejects, and the sender is told.
    clock.advance_secs(14 * DAY + 60);
    assert_eq!(worker.run_once().await?.rejected, 1);
    let told = calls(&received, 2).await?;
    assert!(told[1].signed);
    assert_eq!(told[1].body, new_events(&submission, &case));
    // 7 days after the decision the content goes, with a delete-submission event: told again.
    clock.advance_secs(7 * DAY + 60);
    assert_eq!(worker.run_once().await?.content_deleted, 1);
    let told = calls(&received, 3).await?;
    assert!(told[2].signed);
    assert_eq!(told[2].body, new_events(&submission, &case));
    // Three weeks later the first token has long expired.
    let log = event_log(&app, &token(&app, "demo", "transfer").await?, &case).await?;
    assert_eq!(claims(log.last().map(String::as_str).unwrap_or_default())["sub"], format!("submission:{submission}"));
    assert_eq!(log.len(), 4, "create, submit, reject, delete");
    app.stop().await
}
backend_test!(the_retention_workers_reject_and_deletion_reach_the_senders_callback);
