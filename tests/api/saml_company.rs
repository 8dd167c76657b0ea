//! The company account over SAML 2.0 (issue 12 item 5): the Mein Unternehmenskonto-like simulator
//! under `/dev/unternehmenskonto-saml` delivers the organisation and the acting person, which reach
//! the online service as pforte's organisation claims.

use serde_json::Value;

use crate::helpers::{TestContext, TestResult};
use crate::login::{verify_id_token, Browser};
use crate::saml_logout::simulator_login;

pub async fn the_company_account_logs_in_over_saml_with_organisation_claims(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let sim = ("unternehmenskonto-saml-sim", "/dev/unternehmenskonto-saml");
    let tokens = simulator_login(&app, &mut browser, sim, "openid organisation", ("musterbau", "hoch")).await?;
    let id_token = verify_id_token(&app, tokens["id_token"].as_str().unwrap_or_default()).await?;
    let claim = |name: &str| id_token.claim(name).cloned().unwrap_or(Value::Null);
    assert_eq!(claim("idp"), "unternehmenskonto-saml-sim");
    assert_eq!(claim("account_type"), "organisation");
    assert_eq!(claim("acr"), "http://eidas.europa.eu/LoA/high");
    assert_eq!(claim("org_name"), "Musterbau GmbH");
    assert_eq!(claim("org_tax_number"), "143/815/08155");
    assert_eq!(claim("org_vat_id"), "DE123456789");
    assert_eq!(claim("org_register_number"), "123456");
    assert_eq!(claim("given_name"), "Max", "the acting person");
    assert_eq!(claim("birthdate"), Value::Null, "not released by the organisation scope");
    app.stop().await
}
backend_test!(the_company_account_logs_in_over_saml_with_organisation_claims);
