//! `POST …/{transactionId}/cancel`: an open payment ends as CANCELED by compare-and-set, after the
//! provider was asked whether the citizen paid meanwhile.

use serde_json::Value;

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::payment_api::{bearer, location};
use crate::payment_surface::{
    get_json, open_payment, paid_payment, pay_at_provider, payment_path, post, problem, TENANT,
};

/// A second online service, allowed to create payments at the same authority.
pub const KFZ_SECRET: &str = "kfz-secret-change-me";

/// Its file: payments at the demo authority, no notifications (so no signing secret).
pub fn kfz_client() -> String {
    format!(
        "display_name = \"Kfz-Dienst\"\nredirect_uris = [\"{{public_url}}/kfz/callback\"]\n\
         identity_providers = [\"bundid-sim\"]\nscopes = [\"openid\"]\n\
         grant_types = [\"authorization_code\", \"client_credentials\"]\n\
         originator_id = \"kfz-service\"\ntenants = [\"{TENANT}\"]\n\n\
         [auth]\nmethod = \"client_secret_basic\"\nsecret = \"plain:{KFZ_SECRET}\"\n"
    )
}

async fn cancel(app: &TestApp, token: &str, id: &str, body: &str) -> anyhow::Result<reqwest::Response> {
    post(app, token, &format!("{}/cancel", payment_path(id)), body, None).await
}

pub async fn an_open_payment_is_canceled_notified_and_its_pay_link_leads_back(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    for (request_id, body) in [("CANCEL-1", ""), ("CANCEL-2", "{}")] {
        let id = open_payment(&app, &token, request_id).await?;
        let canceled = cancel(&app, &token, &id, body).await?;
        assert_eq!(canceled.status(), 200, "body {body:?}");
        let canceled: Value = canceled.json().await?;
        let information = &canceled["paymentInformation"];
        assert_eq!(information["status"], "CANCELED");
        assert_eq!(information["statusDetail"], "canceled by the online service");
        assert!(information.get("transactionRedirectUrl").is_none(), "no pay page once final");
        assert_eq!(canceled["paymentRequest"]["requestId"], request_id);

        let events = app.state.db.payment_events(&id).await?;
        assert_eq!(events.last().map(|e| (e.to_status.as_str(), e.source.as_str())), Some(("CANCELED", "client")));
        assert_eq!(app.state.db.notifications_of(&id).await?.len(), 1, "the service is notified");
        let audit = crate::audit::chained_events(&app).await?;
        assert!(audit.iter().any(|r| r.event == "payment.status_changed" && r.subject == id));
        // The citizen's pay link now leads back to the service, never to the provider.
        let pay = app.client.get(app.url(&format!("/pay/{id}"))).send().await?;
        assert_eq!(pay.status(), 303);
        assert_eq!(location(&pay), app.url("/demo/bezahlt"));
    }
    app.stop().await
}
backend_test!(an_open_payment_is_canceled_notified_and_its_pay_link_leads_back);

pub async fn canceling_a_paid_payment_is_a_conflict_naming_its_status(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = paid_payment(&app, &token, "CANCEL-PAID").await?;
    let refused = problem(cancel(&app, &token, &id, "").await?, 409, "VALIDATION_ERROR").await?;
    assert!(refused["detail"].as_str().unwrap_or_default().contains("PAYED"), "{refused}");
    assert_eq!(app.state.db.payment(&id).await?.map(|p| p.status.as_str()), Some("PAYED"));
    app.stop().await
}
backend_test!(canceling_a_paid_payment_is_a_conflict_naming_its_status);

pub async fn canceling_a_canceled_payment_is_a_conflict(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = open_payment(&app, &token, "CANCEL-TWICE").await?;
    assert_eq!(cancel(&app, &token, &id, "").await?.status(), 200);
    let refused = problem(cancel(&app, &token, &id, "").await?, 409, "VALIDATION_ERROR").await?;
    assert!(refused["detail"].as_str().unwrap_or_default().contains("CANCELED"), "{refused}");
    assert_eq!(app.state.db.payment_events(&id).await?.len(), 2, "created, canceled once");
    app.stop().await
}
backend_test!(canceling_a_canceled_payment_is_a_conflict);

pub async fn canceling_an_unknown_payment_is_not_found(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let response = cancel(&app, &token, "no-such-transaction", "").await?;
    problem(response, 404, "UNSPECIFIED").await?;
    app.stop().await
}
backend_test!(canceling_an_unknown_payment_is_not_found);

pub async fn another_services_payment_cannot_be_canceled(ctx: TestContext) -> TestResult {
    let clients = ctx.clients_with(&[("kfz", kfz_client())]);
    let app = ctx
        .spawn_app_with(|f| f.merge(("registry.clients", clients)), std::sync::Arc::new(pforte::clock::SystemClock))
        .await;
    let token = bearer(&app).await?;
    let kfz_created = app
        .client
        .post(app.url(&format!("/paymenttransaction/kfz-service/{TENANT}")))
        .basic_auth("kfz", Some(KFZ_SECRET))
        .json(&crate::payment_api::body(&app, "KFZ-1"))
        .send()
        .await?;
    assert_eq!(kfz_created.status(), 201);
    let id = crate::payment_surface::id_of(&kfz_created.json().await?);
    // Under its own originatorId the demo service does not find it; under the other one it is refused.
    problem(cancel(&app, &token, &id, "").await?, 404, "UNSPECIFIED").await?;
    let foreign =
        post(&app, &token, &format!("/paymenttransaction/kfz-service/{TENANT}/{id}/cancel"), "", None).await?;
    problem(foreign, 403, "FORBIDDEN").await?;
    assert_eq!(app.state.db.payment(&id).await?.map(|p| p.status.as_str()), Some("INITIAL"));
    app.stop().await
}
backend_test!(another_services_payment_cannot_be_canceled);

pub async fn cancel_after_the_citizen_paid_at_the_provider_records_payed_and_is_a_conflict(
    ctx: TestContext,
) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = open_payment(&app, &token, "CANCEL-RACE").await?;
    // Paid at the provider; pforte has not heard of it yet.
    pay_at_provider(&app, &id, "PAYPAL").await?;
    assert_eq!(app.state.db.payment(&id).await?.map(|p| p.status.as_str()), Some("INITIAL"));
    let refused = problem(cancel(&app, &token, &id, "").await?, 409, "VALIDATION_ERROR").await?;
    assert!(refused["detail"].as_str().unwrap_or_default().contains("PAYED"), "{refused}");
    let (_, read) = get_json(&app, &token, &payment_path(&id)).await?;
    assert_eq!(read["paymentInformation"]["status"], "PAYED", "the provider's answer is recorded");
    assert_eq!(read["paymentInformation"]["paymentMethod"], "PAYPAL");
    app.stop().await
}
backend_test!(cancel_after_the_citizen_paid_at_the_provider_records_payed_and_is_a_conflict);

pub async fn a_cancel_with_parameters_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = open_payment(&app, &token, "CANCEL-BODY").await?;
    problem(cancel(&app, &token, &id, r#"{"reason":"x"}"#).await?, 400, "VALIDATION_ERROR").await?;
    assert_eq!(app.state.db.payment(&id).await?.map(|p| p.status.as_str()), Some("INITIAL"));
    app.stop().await
}
backend_test!(a_cancel_with_parameters_is_refused);

pub async fn a_payment_made_after_a_local_cancel_is_flagged_for_the_finance_office(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = bearer(&app).await?;
    let id = open_payment(&app, &token, "CANCEL-THEN-PAID").await?;
    let pay_page = location(&app.client.get(app.url(&format!("/pay/{id}"))).send().await?);
    assert_eq!(cancel(&app, &token, &id, "").await?.status(), 200);
    // The citizen still had the provider's pay page open (the standard has no cancel towards the
    // provider) and pays there; the return page makes pforte read it.
    app.client.post(&pay_page).form(&[("method", "GIROPAY"), ("action", "pay")]).send().await?;
    let back = app.client.get(app.url(&format!("/pay/{id}/return"))).send().await?;
    assert_eq!(back.status(), 303);

    let payment = app.state.db.payment(&id).await?.expect("payment");
    assert_eq!(payment.status.as_str(), "CANCELED", "the service was told CANCELED; the status stays");
    assert!(payment.paid_after_timeout_at.is_some(), "flagged for the finance office");
    assert!(payment.paid_at.is_some(), "the money's arrival time is kept");
    let events = app.state.db.payment_events(&id).await?;
    assert_eq!(events.last().map(|e| (e.to_status.as_str(), e.source.as_str())), Some(("PAYED", "provider")));
    let audit = crate::audit::chained_events(&app).await?;
    assert!(audit.iter().any(|r| r.event == "payment.paid_after_cancel" && r.subject == id));
    // A second read changes nothing.
    app.client.get(app.url(&format!("/pay/{id}/return"))).send().await?;
    assert_eq!(app.state.db.payment_events(&id).await?.len(), events.len());
    app.stop().await
}
backend_test!(a_payment_made_after_a_local_cancel_is_flagged_for_the_finance_office);
