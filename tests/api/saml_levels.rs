//! The level as an attribute (issue 12): BundID states the level in `AuthnContextClassRef` and again
//! in the attribute `EID-CITIZEN-QAA-LEVEL`; an entry with `saml.level_attribute` reads it through
//! `[levels]`, and where both name a level the lower counts.

use serde_json::Value;

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::saml::{assert_refused, id_token_of, spawn_with_entry, start};
use crate::saml_idp::idp_metadata;

const SUBSTANTIAL: &str = "http://eidas.europa.eu/LoA/substantial";
const LEVEL_ATTRIBUTE: &str = "EID-CITIZEN-QAA-LEVEL";
const UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified";

async fn spawn(ctx: &TestContext) -> TestApp {
    spawn_with_entry(ctx, &idp_metadata(""), &format!(r#"level_attribute = "{LEVEL_ATTRIBUTE}""#)).await
}

/// A login whose assertion says `class_ref` and states `stated` in the level attribute.
async fn login(app: &TestApp, class_ref: &str, stated: &str) -> reqwest::Response {
    let mut flight = start(app, SUBSTANTIAL).await;
    let mut answer = flight.answer(app);
    answer.class_ref = class_ref.to_owned();
    answer.attributes.push((LEVEL_ATTRIBUTE.to_owned(), stated.to_owned()));
    flight.post(app, &answer.signed_encrypted()).await
}

pub async fn the_level_is_read_from_the_attribute_where_the_class_ref_says_nothing(ctx: TestContext) -> TestResult {
    let app = spawn(&ctx).await;
    let answer = login(&app, UNSPECIFIED, "STORK-QAA-Level-4").await;
    let id_token = id_token_of(&app, &answer).await?;
    assert_eq!(id_token.claim("acr"), Some(&Value::from("http://eidas.europa.eu/LoA/high")));
    app.stop().await
}
backend_test!(the_level_is_read_from_the_attribute_where_the_class_ref_says_nothing);

pub async fn the_lower_of_class_ref_and_attribute_counts(ctx: TestContext) -> TestResult {
    let app = spawn(&ctx).await;
    // The class ref says high, the attribute low: below the substantial the service needs.
    assert_refused(login(&app, "STORK-QAA-Level-4", "STORK-QAA-Level-1").await).await?;
    // The other way round as well: the attribute cannot raise the class ref.
    assert_refused(login(&app, "STORK-QAA-Level-1", "STORK-QAA-Level-4").await).await?;
    let answer = login(&app, "STORK-QAA-Level-4", "STORK-QAA-Level-3").await;
    let id_token = id_token_of(&app, &answer).await?;
    assert_eq!(id_token.claim("acr"), Some(&Value::from(SUBSTANTIAL)));
    app.stop().await
}
backend_test!(the_lower_of_class_ref_and_attribute_counts);

pub async fn a_level_attribute_outside_the_levels_is_refused(ctx: TestContext) -> TestResult {
    let app = spawn(&ctx).await;
    assert_refused(login(&app, "STORK-QAA-Level-4", "NORMAL").await).await?;
    app.stop().await
}
backend_test!(a_level_attribute_outside_the_levels_is_refused);
