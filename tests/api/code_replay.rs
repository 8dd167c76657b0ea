//! A code presented twice (SECURITY.md #5, RFC 9700 §4.1.3): everything issued from it is revoked,
//! the refresh-token family included, also when the two redemptions race each other. The client is
//! the second service, which has the refresh grant.

use serde_json::Value;

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::login::{refresh, second_code, second_redeem, spawn_with_second_client};

/// Whether the access token still opens userinfo and the refresh token still renews.
async fn still_working(app: &TestApp, tokens: &Value) -> anyhow::Result<(bool, bool)> {
    let access = tokens["access_token"].as_str().unwrap_or_default();
    let userinfo = app.client.get(app.url("/userinfo")).bearer_auth(access).send().await?;
    let refresh_token = tokens["refresh_token"].as_str().expect("the second service gets refresh tokens");
    let renewed = refresh(app, refresh_token).await;
    Ok((userinfo.status() == 200, renewed.status() == 200))
}

pub async fn replayed_code_revokes_the_access_token_and_the_refresh_family(ctx: TestContext) -> TestResult {
    let app = spawn_with_second_client(&ctx, None).await;
    let code = second_code(&app, "STORK-QAA-Level-3").await;
    let first = second_redeem(&app, &code).await;
    assert_eq!(first.status(), 200);
    let tokens: Value = first.json().await?;

    let replay = second_redeem(&app, &code).await;
    assert_eq!(replay.status(), 400);
    assert_eq!(replay.json::<Value>().await?["error"], "invalid_grant");
    let (access_works, refresh_works) = still_working(&app, &tokens).await?;
    assert!(!access_works, "the access token issued from the replayed code is revoked");
    assert!(!refresh_works, "the refresh-token family issued from the replayed code is revoked");
    let audit = crate::audit::chained_events(&app).await?;
    assert!(audit.iter().any(|r| r.event == "login.code_replayed"));
    app.stop().await
}
backend_test!(replayed_code_revokes_the_access_token_and_the_refresh_family);

/// Two redemptions of one code at the same moment: exactly one gets tokens, and once both have been
/// answered, neither its access token nor its refresh token works any more.
pub async fn two_concurrent_redemptions_get_one_answer_and_then_everything_is_revoked(ctx: TestContext) -> TestResult {
    let app = spawn_with_second_client(&ctx, None).await;
    for round in 0..3 {
        let code = second_code(&app, "STORK-QAA-Level-3").await;
        let (a, b) = tokio::join!(second_redeem(&app, &code), second_redeem(&app, &code));
        let mut winners = Vec::new();
        for answer in [a, b] {
            if answer.status() == 200 {
                winners.push(answer.json::<Value>().await?);
            } else {
                assert_eq!(answer.status(), 400, "round {round}");
                assert_eq!(answer.json::<Value>().await?["error"], "invalid_grant", "round {round}");
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one redemption gets tokens");
        let (access_works, refresh_works) = still_working(&app, &winners[0]).await?;
        assert!(!access_works, "round {round}: the winner's access token is revoked");
        assert!(!refresh_works, "round {round}: the winner's refresh token is revoked");
    }
    app.stop().await
}
backend_test!(two_concurrent_redemptions_get_one_answer_and_then_everything_is_revoked);
