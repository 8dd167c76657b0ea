//! Datentransfer callbacks: the Fachverfahren is told of a new submission by a message signed with
//! HMAC-SHA512 over `"{timestamp}.{body}"` under its callback secret (checked here with OpenSSL), and
//! a callback that failed is tried again later.

use std::sync::Arc;

use pforte::clock::ManualClock;
use serde_json::{json, Value};

use crate::helpers::{eventually, TestContext, TestResult};
use crate::transfer_support::*;

async fn submit_one(app: &crate::helpers::TestApp) -> anyhow::Result<(String, String)> {
    let sender = token(app, "demo", "transfer").await?;
    let (submission, case, _) = announced(app, &sender, 0).await?;
    let (metadata, _) = encrypt(&keys().encryption, "enc-1", "application/json", b"{}");
    let response = submit(app, &sender, &submission, json!({ "encryptedMetadata": metadata })).await;
    anyhow::ensure!(response.status() == 202, "submit: {}", response.text().await?);
    Ok((submission, case))
}

pub async fn the_fachverfahren_is_called_back_with_a_signed_new_submissions_message(ctx: TestContext) -> TestResult {
    let (url, received) = callback_receiver("/callbacks", CALLBACK_SECRET, 0).await?;
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = start_with(&ctx, |f| f, Some(&url), Arc::new(clock.clone())).await?;
    let (submission, case) = submit_one(&app).await?;
    let calls = eventually(std::time::Duration::from_secs(10), "the callback", || {
        let received = received.clone();
        async move { Ok(Some(received.lock().expect("log").clone()).filter(|calls| !calls.is_empty())) }
    })
    .await?;
    assert_eq!(calls.len(), 1);
    assert!(calls[0].signed, "the HMAC does not verify");
    assert_eq!(calls[0].timestamp, pforte::clock::Clock::now_millis(&clock) / 1000);
    assert_eq!(
        calls[0].body,
        json!({
            "type": "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions",
            "submissions": [{ "destinationId": DESTINATION, "submissionId": submission, "caseId": case }],
        })
    );
    Ok(())
}
backend_test!(the_fachverfahren_is_called_back_with_a_signed_new_submissions_message);

pub async fn a_failed_callback_is_tried_again_later(ctx: TestContext) -> TestResult {
    let (url, received) = callback_receiver("/callbacks", CALLBACK_SECRET, 1).await?;
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = start_with(&ctx, |f| f, Some(&url), Arc::new(clock.clone())).await?;
    submit_one(&app).await?;
    let count = |n: usize| {
        let received = received.clone();
        move || {
            let received = received.clone();
            async move { Ok((received.lock().expect("log").len() >= n).then_some(())) }
        }
    };
    eventually(std::time::Duration::from_secs(10), "the first attempt", count(1)).await?;
    // Not again before the pause is over.
    clock.advance_secs(10);
    assert!(eventually(std::time::Duration::from_secs(2), "an early retry", count(2)).await.is_err());
    clock.advance_secs(25);
    eventually(std::time::Duration::from_secs(10), "the retry", count(2)).await?;
    let calls = received.lock().expect("log").clone();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.signed));
    assert_eq!(calls[0].body, calls[1].body);
    assert!(calls[1].timestamp >= calls[0].timestamp + 30, "signed anew at the retry: {calls:?}");
    // Delivered: no third call.
    clock.advance_secs(3600);
    assert!(eventually(std::time::Duration::from_secs(2), "a third call", count(3)).await.is_err());
    Ok(())
}
backend_test!(a_failed_callback_is_tried_again_later);

pub async fn the_sending_service_is_notified_of_each_status_change(ctx: TestContext) -> TestResult {
    const HOOK_SECRET: &str = "whsec_XhU7Wkr3ASIjW+6x/kAbDvWY3+otvWFk7lCaaepiuJs=";
    let hooks = crate::helpers::NotificationReceiver::start(&[HOOK_SECRET]).await?;
    let clients = ctx.clients_notifying("notifying-clients", &hooks.url, HOOK_SECRET)?;
    for name in ["fachverfahren", "fachverfahren-2"] {
        std::fs::write(std::path::Path::new(&clients).join(format!("{name}.toml")), client_file(name, ""))?;
    }
    let clock: pforte::clock::SharedClock = Arc::new(pforte::clock::SystemClock);
    let app = start_with(&ctx, |f| f.merge(("registry.clients", clients)), None, clock).await?;
    let (submission, case) = submit_one(&app).await?;
    let subscriber = token(&app, "fachverfahren", "transfer").await?;
    let accept = decision(&keys().signing, "accept-submission", (DESTINATION, &submission, &case));
    assert_eq!(post_event(&app, &subscriber, &case, &accept).await.status(), 204);

    let deliveries = eventually(std::time::Duration::from_secs(15), "both notifications", || {
        let hooks = hooks.clone();
        async move { Ok(Some(hooks.received()).filter(|d| d.len() >= 2)) }
    })
    .await?;
    let statuses: Vec<&Value> = deliveries.iter().map(|d| &d.payload["data"]["status"]).collect();
    assert_eq!(statuses, [&json!("submitted"), &json!("accepted")]);
    for delivery in &deliveries {
        assert_eq!(delivery.payload["type"], "transfer.status_changed");
        assert_eq!(delivery.payload["data"]["submissionId"], submission);
        assert_eq!(delivery.payload["data"]["caseId"], case);
        assert_eq!(delivery.payload["data"]["destinationId"], DESTINATION);
    }
    Ok(())
}
backend_test!(the_sending_service_is_notified_of_each_status_change);
