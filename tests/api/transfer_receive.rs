//! Datentransfer, the subscriber's side: only the destination's own subscriber sees and decides its
//! submissions, and only with a SET the destination's signing key verifies.

use serde_json::{json, Value};

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::transfer_support::*;

/// A submitted submission to [`DESTINATION`] with one attachment: (submissionId, caseId, attachmentId).
async fn submitted(app: &TestApp, sender: &str) -> anyhow::Result<(String, String, String)> {
    let k = keys();
    let (submission, case, attachments) = announced(app, sender, 1).await?;
    let (jwe, _) = encrypt(&k.encryption, "enc-1", "application/pdf", b"document");
    anyhow::ensure!(upload(app, sender, &submission, &attachments[0], jwe).await.status() == 204, "upload");
    let (metadata, _) = encrypt(&k.encryption, "enc-1", "application/json", b"{}");
    let response = submit(app, sender, &submission, json!({ "encryptedMetadata": metadata })).await;
    anyhow::ensure!(response.status() == 202, "submit: {}", response.text().await?);
    Ok((submission, case, attachments[0].clone()))
}

pub async fn another_destinations_subscriber_sees_and_decides_nothing(ctx: TestContext) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let (submission, case, attachment) = submitted(&app, &sender).await?;
    let stranger = token(&app, "fachverfahren-2", "transfer").await?;

    let get = |path: String, token: String| {
        let request = app.client.get(app.url(&path)).bearer_auth(token);
        async move { request.send().await.expect("request") }
    };
    let list = format!("/v1/submissions?destinationId={DESTINATION}");
    assert_eq!(refused(get(list.clone(), stranger.clone()).await, 403).await?, "forbidden");
    assert_eq!(refused(get(format!("/v1/submissions/{submission}"), stranger.clone()).await, 403).await?, "forbidden");
    let download = format!("/v1/submissions/{submission}/attachments/{attachment}");
    assert_eq!(refused(get(download, stranger.clone()).await, 403).await?, "forbidden");
    // Its own destination's list is empty: the submission went elsewhere.
    let own: Value =
        get(format!("/v1/submissions?destinationId={OTHER_DESTINATION}"), stranger.clone()).await.json().await?;
    assert_eq!(own["totalCount"], 0);
    // Even a SET signed with the right destination's key does not let it decide.
    let accept = decision(&keys().signing, "accept-submission", (DESTINATION, &submission, &case));
    assert_eq!(refused(post_event(&app, &stranger, &case, &accept).await, 403).await?, "forbidden");
    // The sender is no subscriber either.
    assert_eq!(refused(get(list, sender.clone()).await, 403).await?, "forbidden");

    // The submission is still waiting for its own subscriber.
    let subscriber = token(&app, "fachverfahren", "transfer").await?;
    let list: Value = get(format!("/v1/submissions?destinationId={DESTINATION}"), subscriber).await.json().await?;
    assert_eq!(list["totalCount"], 1);
    Ok(())
}
backend_test!(another_destinations_subscriber_sees_and_decides_nothing);

pub async fn a_forged_or_misaddressed_decision_is_refused_and_changes_nothing(ctx: TestContext) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let k = keys();
    let sender = token(&app, "demo", "transfer").await?;
    let subscriber = token(&app, "fachverfahren", "transfer").await?;
    let (submission, case, _) = submitted(&app, &sender).await?;
    let ids = (DESTINATION, submission.as_str(), case.as_str());

    let forged = decision(&k.forger, "accept-submission", ids);
    assert_eq!(refused(post_event(&app, &subscriber, &case, &forged).await, 422).await?, "transfer_invalid_event");
    let other_destination = decision(&k.signing, "accept-submission", (OTHER_DESTINATION, &submission, &case));
    let response = post_event(&app, &subscriber, &case, &other_destination).await;
    assert_eq!(refused(response, 422).await?, "transfer_invalid_event");
    let other_submission = uuid::Uuid::new_v4().to_string();
    let misaddressed = decision(&k.signing, "accept-submission", (DESTINATION, &other_submission, &case));
    assert_eq!(
        refused(post_event(&app, &subscriber, &case, &misaddressed).await, 422).await?,
        "transfer_invalid_event"
    );
    let not_a_decision = decision(&k.signing, "submit-submission", ids);
    assert_eq!(
        refused(post_event(&app, &subscriber, &case, &not_a_decision).await, 422).await?,
        "transfer_invalid_event"
    );
    // A PS512 SET whose header claims another algorithm, and a body that is no JWT at all.
    let set_claims = json!({ "jti": "j", "iss": DESTINATION, "iat": 0, "sub": format!("submission:{submission}"),
        "txn": format!("case:{case}"), "events": { format!("{EVENTS}accept-submission"): {} } });
    let mut parts: Vec<String> = sign_set(&k.signing, "sig-1", &set_claims).split('.').map(str::to_owned).collect();
    parts[0] = base64_url(&json!({ "typ": "secevent+jwt", "alg": "none", "kid": "sig-1" }).to_string());
    assert_eq!(
        refused(post_event(&app, &subscriber, &case, &parts.join(".")).await, 422).await?,
        "transfer_invalid_event"
    );
    assert_eq!(refused(post_event(&app, &subscriber, &case, "accept").await, 422).await?, "transfer_invalid_event");
    let mut ahead = set_claims.clone();
    ahead["iat"] = json!(chrono::Utc::now().timestamp() + 3600);
    let from_the_future = sign_set(&k.signing, "sig-1", &ahead);
    assert_eq!(
        refused(post_event(&app, &subscriber, &case, &from_the_future).await, 422).await?,
        "transfer_invalid_event"
    );
    let wrong_type = app
        .client
        .post(app.url(&format!("/v1/cases/{case}/events")))
        .bearer_auth(&subscriber)
        .header("content-type", "application/json")
        .body(decision(&k.signing, "accept-submission", ids))
        .send()
        .await?;
    assert_eq!(refused(wrong_type, 415).await?, "unsupported_media_type");

    // Nothing of it entered the log; a proper rejection does, once.
    assert_eq!(event_log(&app, &sender, &case).await?.len(), 2);
    let reject = decision(&k.signing, "reject-submission", ids);
    assert_eq!(post_event(&app, &subscriber, &case, &reject).await.status(), 204);
    assert_eq!(refused(post_event(&app, &subscriber, &case, &reject).await, 409).await?, "transfer_invalid_transition");
    let log = event_log(&app, &subscriber, &case).await?;
    assert_eq!(log.len(), 3);
    assert_eq!(
        claims(&log[2])["events"].as_object().map(|e| e.contains_key(&format!("{EVENTS}reject-submission"))),
        Some(true)
    );
    Ok(())
}
backend_test!(a_forged_or_misaddressed_decision_is_refused_and_changes_nothing);

pub async fn a_submission_not_yet_submitted_is_not_shown_to_the_subscriber(ctx: TestContext) -> TestResult {
    let app = start(&ctx, |f| f).await?;
    let sender = token(&app, "demo", "transfer").await?;
    let subscriber = token(&app, "fachverfahren", "transfer").await?;
    let (submission, case, _) = announced(&app, &sender, 1).await?;
    let response =
        app.client.get(app.url(&format!("/v1/submissions/{submission}"))).bearer_auth(&subscriber).send().await?;
    assert_eq!(refused(response, 404).await?, "not_found");
    let accept = decision(&keys().signing, "accept-submission", (DESTINATION, &submission, &case));
    let response = post_event(&app, &subscriber, &case, &accept).await;
    assert_eq!(refused(response, 409).await?, "transfer_invalid_transition");
    Ok(())
}
backend_test!(a_submission_not_yet_submitted_is_not_shown_to_the_subscriber);

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}
