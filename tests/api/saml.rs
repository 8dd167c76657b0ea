//! Logins through a SAML 2.0 identity provider (issue 12): the test IdP in `saml_idp.rs` answers
//! pforte's signed AuthnRequest with signed and encrypted Responses, and with each forged variant a
//! careful relying party refuses. The online service speaks only OpenID Connect to pforte.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{Duration, Utc};
use pforte::clock::SystemClock;
use serde_json::Value;

use crate::helpers::{copy_dir, TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::login::{citizen_request, code_from, location, redeem, verify_id_token, Browser};
use crate::oidc::{with, VERIFIER};
use crate::saml_idp::{self, keys, receive_request, sign, Answer, ReceivedRequest, BPK2, CBC, GCM};

pub const PROVIDER: &str = "bundid-saml";
const SUBSTANTIAL: &str = "http://eidas.europa.eu/LoA/substantial";

/// The provider file; `{dir}` is where the keys are.
const PROVIDER_FILE: &str = r#"
kind = "saml"
display_name = "BundID (SAML)"
account_type = "person"

[claims]
"urn:oid:2.5.4.42" = "given_name"
"urn:oid:2.5.4.4" = "family_name"
"urn:oid:1.2.40.0.10.2.1.1.55" = "birthdate"

[levels]
STORK-QAA-Level-1 = "low"
STORK-QAA-Level-3 = "substantial"
STORK-QAA-Level-4 = "high"

[acr_values]
low = "STORK-QAA-Level-1"
substantial = "STORK-QAA-Level-3"
high = "STORK-QAA-Level-4"

[saml]
metadata_file = "bundid-saml-metadata.xml"
entity_id = "{public_url}/saml/bundid-saml"
signing_key = "file:{dir}/sp.key"
signing_certificate = "file:{dir}/sp.crt"
decryption_key = "file:{dir}/sp.key"
decryption_certificate = "file:{dir}/sp.crt"
subject_attribute = "urn:oid:1.3.6.1.4.1.25484.494450.3"

[saml.akdb]
online_service_id = "musterstadt-hundesteuer"
organization_display_name = "Stadt Musterstadt"
authn_methods = ["eID", "Elster"]

[saml.akdb.requested_attributes]
"urn:oid:1.3.6.1.4.1.25484.494450.3" = "required"
"urn:oid:2.5.4.42" = "required"
"urn:oid:1.2.40.0.10.2.1.1.55" = "optional"
"#;

/// pforte with the shipped registry plus the SAML provider, which the demo service may use;
/// `metadata_extra` goes into the IdP's metadata (see [`saml_idp::idp_metadata`]).
pub async fn spawn(ctx: &TestContext, metadata_extra: &str) -> TestApp {
    spawn_with_metadata(ctx, &saml_idp::idp_metadata(metadata_extra)).await
}

/// [`spawn`] with this IdP metadata document.
pub async fn spawn_with_metadata(ctx: &TestContext, idp_metadata: &str) -> TestApp {
    spawn_with_entry(ctx, idp_metadata, "").await
}

/// [`spawn_with_metadata`] with `saml_keys` (lines of `key = value`) added to the entry's `[saml]`.
pub async fn spawn_with_entry(ctx: &TestContext, idp_metadata: &str, saml_keys: &str) -> TestApp {
    let root = ctx.dir.path();
    let providers = root.join("providers");
    copy_dir(&Path::new(MANIFEST_DIR).join("providers"), &providers).expect("copy providers");
    std::fs::write(root.join("sp.key"), keys().sp.key_pem()).expect("key");
    std::fs::write(root.join("sp.crt"), keys().sp.cert_pem()).expect("cert");
    let identity = providers.join("identity");
    let entry = PROVIDER_FILE
        .replace("{dir}", &root.display().to_string())
        .replace("[saml]\n", &format!("[saml]\n{saml_keys}\n"));
    std::fs::write(identity.join(format!("{PROVIDER}.toml")), entry).expect("provider");
    std::fs::write(identity.join("bundid-saml-metadata.xml"), idp_metadata).expect("metadata");
    let clients = root.join("clients");
    copy_dir(&Path::new(MANIFEST_DIR).join("config/clients"), &clients).expect("copy clients");
    let demo = std::fs::read_to_string(clients.join("demo.toml")).expect("demo client");
    let demo =
        demo.replace(r#"identity_providers = ["bundid-sim""#, r#"identity_providers = ["bundid-saml", "bundid-sim""#);
    std::fs::write(clients.join("demo.toml"), demo).expect("demo client");
    ctx.spawn_app_with(
        |f| f.merge(("registry.providers", providers)).merge(("registry.clients", clients)),
        Arc::new(SystemClock),
    )
    .await
}

/// A login in flight: the browser was sent to the IdP with this request.
pub struct Flight {
    pub browser: Browser,
    pub request: ReceivedRequest,
}

pub fn acs(app: &TestApp) -> String {
    app.url(&format!("/saml/{PROVIDER}/acs"))
}

pub fn sp_entity_id(app: &TestApp) -> String {
    app.url(&format!("/saml/{PROVIDER}"))
}

/// The demo service asks for `acr`; pforte sends the browser to the IdP.
pub async fn start(app: &TestApp, acr: &str) -> Flight {
    let mut browser = Browser::new(app);
    let params = with(citizen_request(app, "openid profile birth", acr), "idp_hint", Some(PROVIDER));
    let first = browser.authorize(&params).await;
    assert_eq!(first.status(), 303, "idp_hint leads straight to the IdP");
    let request = receive_request(&location(&first));
    Flight { browser, request }
}

impl Flight {
    pub fn answer(&self, app: &TestApp) -> Answer {
        Answer::to(&self.request, &acs(app), &sp_entity_id(app))
    }

    /// The IdP posts `xml` to the ACS; the browser follows pforte's redirect back to itself and on.
    pub async fn post(&mut self, app: &TestApp, xml: &str) -> reqwest::Response {
        let posted = self.post_only(app, xml).await;
        if posted.status() != 303 {
            return posted;
        }
        self.browser.get(&location(&posted)).await
    }

    pub async fn post_only(&mut self, app: &TestApp, xml: &str) -> reqwest::Response {
        let encoded = STANDARD.encode(xml);
        let relay_state = self.request.relay_state.clone();
        self.browser.post(&acs(app), &[("SAMLResponse", &encoded), ("RelayState", &relay_state)]).await
    }
}

/// The service got a code; the tokens say who at which level.
pub async fn id_token_of(app: &TestApp, answer: &reqwest::Response) -> anyhow::Result<josekit::jwt::JwtPayload> {
    let code = code_from(answer, app).await.get("code").cloned().unwrap_or_default();
    let tokens: Value = redeem(app, &code, VERIFIER).await.json().await?;
    verify_id_token(app, tokens["id_token"].as_str().unwrap_or_default()).await
}

/// The tokens the service redeems for the code in `answer`.
pub async fn tokens_of(app: &TestApp, answer: &reqwest::Response) -> anyhow::Result<Value> {
    let code = code_from(answer, app).await.get("code").cloned().unwrap_or_default();
    Ok(redeem(app, &code, VERIFIER).await.json().await?)
}

/// No code reached the service; its way back (redirect or the page's link) says access_denied.
pub async fn assert_refused(answer: reqwest::Response) -> anyhow::Result<()> {
    let status = answer.status();
    let target = location(&answer);
    let body = answer.text().await?;
    anyhow::ensure!(!target.contains("code=") && !body.contains("code="), "a code was issued: {target}");
    let back = if status == 303 { target } else { body.replace("&amp;", "&") };
    anyhow::ensure!(back.contains("error=access_denied"), "status {status}: {back}");
    Ok(())
}

pub async fn a_signed_and_encrypted_response_logs_the_person_in_with_level_and_mapped_claims(
    ctx: TestContext,
) -> TestResult {
    let app = spawn(&ctx, "").await;
    let mut flight = start(&app, SUBSTANTIAL).await;
    let xml = &flight.request.xml;
    assert!(xml.contains(r#"ForceAuthn="true""#), "{xml}");
    assert!(xml.contains(r#"Comparison="minimum"><saml:AuthnContextClassRef>STORK-QAA-Level-3<"#), "{xml}");
    assert!(xml.contains(&format!(r#"AssertionConsumerServiceURL="{}""#, acs(&app))), "{xml}");
    assert!(xml.contains(&format!(r#"Destination="{}""#, saml_idp::IDP_SSO)), "{xml}");
    assert!(xml.contains(&format!("<saml:Issuer>{}</saml:Issuer>", sp_entity_id(&app))), "{xml}");
    assert!(
        xml.contains(r#"<akdb:AuthenticationRequest xmlns:akdb="https://www.akdb.de/request/2018/09" Version="2">"#)
    );
    assert!(xml.contains("<classic-ui:OnlineServiceId>musterstadt-hundesteuer<"), "{xml}");
    assert!(xml.contains("<classic-ui:OrganizationDisplayName>Stadt Musterstadt<"), "{xml}");
    assert!(xml.contains(&format!(r#"Name="{BPK2}" RequiredAttribute="true""#)), "{xml}");
    assert!(xml.contains("<akdb:eID><akdb:Enabled>true</akdb:Enabled></akdb:eID>"), "{xml}");

    let answer = flight.post(&app, &flight.answer(&app).signed_encrypted()).await;
    let id_token = id_token_of(&app, &answer).await?;
    let claim = |name: &str| id_token.claim(name).cloned().unwrap_or(Value::Null);
    assert_eq!(claim("acr"), SUBSTANTIAL, "the level survives the broker");
    assert_eq!(claim("idp"), PROVIDER);
    assert_eq!(claim("given_name"), "Erika");
    assert_eq!(claim("family_name"), "Mustermann");
    assert_eq!(claim("birthdate"), "1964-08-12");
    let sub = claim("sub").as_str().unwrap_or_default().to_owned();
    assert_eq!(sub.len(), 43, "a pairwise subject");
    assert!(!sub.contains("bpk2"), "never the upstream identifier itself");

    // The same bPK2 in a later login gives the same subject.
    let mut again = start(&app, SUBSTANTIAL).await;
    let answer = again.post(&app, &again.answer(&app).signed_encrypted()).await;
    assert_eq!(id_token_of(&app, &answer).await?.claim("sub"), Some(&Value::String(sub)));
    app.stop().await
}
backend_test!(a_signed_and_encrypted_response_logs_the_person_in_with_level_and_mapped_claims);

pub async fn pforte_serves_its_metadata_with_entity_id_acs_and_both_certificates(ctx: TestContext) -> TestResult {
    let app = spawn(&ctx, "").await;
    let response = app.get(&format!("/saml/{PROVIDER}/metadata")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/samlmetadata+xml");
    let xml = response.text().await?;
    assert!(xml.contains(&format!(r#"entityID="{}""#, sp_entity_id(&app))), "{xml}");
    assert!(xml.contains(&format!(r#"Location="{}""#, acs(&app))), "{xml}");
    assert!(
        xml.contains(&format!(
            r#"<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{}"/>"#,
            app.url(&format!("/saml/{PROVIDER}/slo"))
        )),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<md:KeyDescriptor use="signing">"#) && xml.contains(r#"<md:KeyDescriptor use="encryption">"#)
    );
    assert!(xml.contains(&keys().sp.cert_base64()), "pforte's certificate is published");
    assert!(xml.contains(GCM), "{xml}");
    assert_eq!(app.get("/saml/bundid-sim/metadata").await.status(), 404, "an OpenID Connect provider has none");
    app.stop().await
}
backend_test!(pforte_serves_its_metadata_with_entity_id_acs_and_both_certificates);

/// One forged Response: made from the honest answer by `forge`, refused with access_denied.
async fn refused(ctx: TestContext, forge: impl FnOnce(Answer) -> String) -> TestResult {
    let app = spawn(&ctx, "").await;
    let mut flight = start(&app, SUBSTANTIAL).await;
    let xml = forge(flight.answer(&app));
    assert_refused(flight.post(&app, &xml).await).await?;
    app.stop().await
}

fn signed_plain(answer: &Answer) -> String {
    sign(&answer.response("_r1", &answer.assertion().replace("{signature}", "")), "_r1", &keys().idp.key)
}

pub async fn an_unsigned_response_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |answer| answer.response("_r1", &answer.assertion()).replace("{signature}", "")).await
}
backend_test!(an_unsigned_response_is_refused);

pub async fn a_response_signed_with_another_key_than_the_metadata_pins_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |answer| {
        let inner = saml_idp::encrypt(&answer.assertion().replace("{signature}", ""), GCM);
        sign(&answer.response("_r1", &inner), "_r1", &keys().forger.key)
    })
    .await
}
backend_test!(a_response_signed_with_another_key_than_the_metadata_pins_is_refused);

pub async fn a_second_assertion_beside_the_signed_one_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |answer| {
        let mut evil = answer.clone();
        evil.assertion_id = "_evil".into();
        evil.attributes = vec![(BPK2.into(), "someone-else".into())];
        let signed = sign(&answer.assertion(), &answer.assertion_id, &keys().idp.key);
        answer
            .response("_r1", &format!("{}{signed}", evil.assertion().replace("{signature}", "")))
            .replace("{signature}", "")
    })
    .await
}
backend_test!(a_second_assertion_beside_the_signed_one_is_refused);

pub async fn a_signed_assertion_moved_out_of_the_way_of_an_unsigned_one_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |answer| {
        let signed = sign(&answer.assertion(), &answer.assertion_id, &keys().idp.key);
        let mut evil = answer.clone();
        evil.attributes = vec![(BPK2.into(), "someone-else".into())];
        // The signed assertion hides in the Response's Extensions; the unsigned one, with the same ID,
        // stands where a relying party looks.
        let extensions = format!("<samlp:Extensions>{signed}</samlp:Extensions>");
        let response = answer.response("_r1", &evil.assertion().replace("{signature}", "")).replace("{signature}", "");
        response.replacen("<samlp:Status>", &format!("{extensions}<samlp:Status>"), 1)
    })
    .await
}
backend_test!(a_signed_assertion_moved_out_of_the_way_of_an_unsigned_one_is_refused);

pub async fn a_comment_inside_the_name_id_or_an_attribute_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |mut answer| {
        answer.attributes[0].1 = "bpk2-erika<!-- -->.attacker".into();
        signed_plain(&answer)
    })
    .await
}
backend_test!(a_comment_inside_the_name_id_or_an_attribute_is_refused);

pub async fn a_response_to_another_request_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |mut answer| {
        answer.in_response_to = "_not-the-request-pforte-sent".into();
        answer.signed_encrypted()
    })
    .await
}
backend_test!(a_response_to_another_request_is_refused);

pub async fn a_response_to_another_destination_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |mut answer| {
        answer.destination = "https://other-sp.example/acs".into();
        answer.signed_encrypted()
    })
    .await
}
backend_test!(a_response_to_another_destination_is_refused);

pub async fn an_assertion_for_another_recipient_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |mut answer| {
        answer.recipient = "https://other-sp.example/acs".into();
        answer.signed_encrypted()
    })
    .await
}
backend_test!(an_assertion_for_another_recipient_is_refused);

pub async fn an_assertion_for_another_audience_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |mut answer| {
        answer.audience = "https://other-sp.example".into();
        answer.signed_encrypted()
    })
    .await
}
backend_test!(an_assertion_for_another_audience_is_refused);

pub async fn an_assertion_from_another_issuer_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |mut answer| {
        answer.issuer = "https://other-idp.example".into();
        answer.signed_encrypted()
    })
    .await
}
backend_test!(an_assertion_from_another_issuer_is_refused);

pub async fn an_expired_assertion_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |mut answer| {
        answer.not_on_or_after = Utc::now() - Duration::minutes(5);
        answer.signed_encrypted()
    })
    .await
}
backend_test!(an_expired_assertion_is_refused);

pub async fn a_document_type_declaration_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |answer| {
        let xml = answer.signed_encrypted();
        format!(r#"<?xml version="1.0"?><!DOCTYPE samlp:Response [<!ENTITY e "x">]>{xml}"#)
    })
    .await
}
backend_test!(a_document_type_declaration_is_refused);

pub async fn an_oversized_response_is_refused(ctx: TestContext) -> TestResult {
    let app = spawn(&ctx, "").await;
    let mut flight = start(&app, SUBSTANTIAL).await;
    let mut answer = flight.answer(&app);
    answer.attributes.push(("urn:oid:padding".into(), "x".repeat(200 * 1024)));
    let answer = flight.post(&app, &answer.signed_encrypted()).await;
    assert!(answer.status().is_client_error(), "{}", answer.status());
    assert!(!location(&answer).contains("code="));
    app.stop().await
}
backend_test!(an_oversized_response_is_refused);

pub async fn aes_cbc_is_refused_while_the_metadata_does_not_demand_it(ctx: TestContext) -> TestResult {
    refused(ctx, |answer| {
        let inner = saml_idp::encrypt(&answer.assertion().replace("{signature}", ""), CBC);
        sign(&answer.response("_r1", &inner), "_r1", &keys().idp.key)
    })
    .await
}
backend_test!(aes_cbc_is_refused_while_the_metadata_does_not_demand_it);

pub async fn aes_cbc_is_accepted_when_the_idp_metadata_offers_nothing_else(ctx: TestContext) -> TestResult {
    let cbc_only = format!(
        r#"<md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo><md:EncryptionMethod Algorithm="{CBC}"/></md:KeyDescriptor>"#,
        keys().idp.cert_base64()
    );
    let app = spawn(&ctx, &cbc_only).await;
    let mut flight = start(&app, SUBSTANTIAL).await;
    let answer = flight.answer(&app);
    let inner = saml_idp::encrypt(&answer.assertion().replace("{signature}", ""), CBC);
    let response = flight.post(&app, &sign(&answer.response("_r1", &inner), "_r1", &keys().idp.key)).await;
    assert_eq!(id_token_of(&app, &response).await?.claim("given_name"), Some(&Value::from("Erika")));
    app.stop().await
}
backend_test!(aes_cbc_is_accepted_when_the_idp_metadata_offers_nothing_else);

pub async fn rsa_pkcs1_key_transport_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |answer| {
        let assertion = answer.assertion().replace("{signature}", "");
        let inner = saml_idp::encrypt_with(&assertion, GCM, "http://www.w3.org/2001/04/xmlenc#rsa-1_5");
        sign(&answer.response("_r1", &inner), "_r1", &keys().idp.key)
    })
    .await
}
backend_test!(rsa_pkcs1_key_transport_is_refused);

pub async fn a_signed_assertion_without_encryption_is_accepted(ctx: TestContext) -> TestResult {
    let app = spawn(&ctx, "").await;
    let mut flight = start(&app, SUBSTANTIAL).await;
    let answer = flight.answer(&app);
    let signed = sign(&answer.assertion(), &answer.assertion_id, &keys().idp.key);
    let response = flight.post(&app, &answer.response("_r1", &signed).replace("{signature}", "")).await;
    assert_eq!(id_token_of(&app, &response).await?.claim("acr"), Some(&Value::from(SUBSTANTIAL)));
    app.stop().await
}
backend_test!(a_signed_assertion_without_encryption_is_accepted);

pub async fn one_response_per_request_and_an_assertion_is_used_once(ctx: TestContext) -> TestResult {
    let app = spawn(&ctx, "").await;
    let mut flight = start(&app, SUBSTANTIAL).await;
    let answer = flight.answer(&app);
    let first = flight.post(&app, &answer.signed_encrypted()).await;
    id_token_of(&app, &first).await?;
    // The same request answered again: the login is over, its RelayState unknown.
    let again = flight.post_only(&app, &answer.signed_encrypted()).await;
    assert!(again.status().is_client_error(), "{}", again.status());

    // The same assertion (same ID) answering a new request: a replay.
    let mut second = start(&app, SUBSTANTIAL).await;
    let mut replay = second.answer(&app);
    replay.assertion_id = answer.assertion_id.clone();
    assert_refused(second.post(&app, &replay.signed_encrypted()).await).await?;
    app.stop().await
}
backend_test!(one_response_per_request_and_an_assertion_is_used_once);

pub async fn a_response_arriving_in_another_browser_is_refused(ctx: TestContext) -> TestResult {
    let app = spawn(&ctx, "").await;
    let mut flight = start(&app, SUBSTANTIAL).await;
    let posted = flight.post_only(&app, &flight.answer(&app).signed_encrypted()).await;
    assert_eq!(posted.status(), 303);
    let mut other = Browser::new(&app);
    let answer = other.get(&location(&posted)).await;
    assert_eq!(answer.status(), 400, "another browser gets an error page");
    assert!(!location(&answer).contains("code="));
    app.stop().await
}
backend_test!(a_response_arriving_in_another_browser_is_refused);

pub async fn request_denied_at_the_idp_reaches_the_service_as_access_denied(ctx: TestContext) -> TestResult {
    let app = spawn(&ctx, "").await;
    let mut flight = start(&app, SUBSTANTIAL).await;
    let mut answer = flight.answer(&app);
    answer.status = Some("RequestDenied");
    let response = flight.post(&app, &answer.response("_r1", "").replace("{signature}", "")).await;
    let query: BTreeMap<String, String> = code_from(&response, &app).await;
    assert_eq!(query.get("error").map(String::as_str), Some("access_denied"));
    assert!(!query.contains_key("code"));
    app.stop().await
}
backend_test!(request_denied_at_the_idp_reaches_the_service_as_access_denied);

pub async fn a_login_below_the_required_level_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |mut answer| {
        answer.class_ref = "STORK-QAA-Level-1".into();
        answer.signed_encrypted()
    })
    .await
}
backend_test!(a_login_below_the_required_level_is_refused);

pub async fn a_login_without_the_stable_identifier_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |mut answer| {
        answer.attributes.retain(|(name, _)| name != BPK2);
        answer.signed_encrypted()
    })
    .await
}
backend_test!(a_login_without_the_stable_identifier_is_refused);

pub async fn the_demo_service_logs_in_through_the_saml_simulator(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let params = with(citizen_request(&app, "openid profile birth", SUBSTANTIAL), "idp_hint", Some("bundid-saml-sim"));
    let to_idp = browser.authorize(&params).await;
    assert_eq!(to_idp.status(), 303);
    assert!(location(&to_idp).starts_with(&app.url("/dev/bundid-saml/sso?SAMLRequest=")), "{}", location(&to_idp));
    let page = browser.get(&location(&to_idp)).await;
    assert_eq!(page.status(), 200, "the simulator accepts pforte's signed request");
    let html = page.text().await?;
    assert!(html.contains("Mindestens verlangt: STORK-QAA-Level-3"), "{html}");
    let ticket = field(&html, "ticket");
    let decided = browser
        .post(
            &app.url("/dev/bundid-saml/sso/decide"),
            &[("ticket", &ticket), ("persona", "erika"), ("level", "STORK-QAA-Level-4"), ("action", "login")],
        )
        .await;
    let html = decided.text().await?;
    let posted = browser
        .post(
            &app.url("/saml/bundid-saml-sim/acs"),
            &[("SAMLResponse", &field(&html, "SAMLResponse")), ("RelayState", &field(&html, "RelayState"))],
        )
        .await;
    assert_eq!(posted.status(), 303);
    let answer = browser.get(&location(&posted)).await;
    let id_token = id_token_of(&app, &answer).await?;
    assert_eq!(id_token.claim("acr"), Some(&Value::from("http://eidas.europa.eu/LoA/high")));
    assert_eq!(id_token.claim("idp"), Some(&Value::from("bundid-saml-sim")));
    assert_eq!(id_token.claim("given_name"), Some(&Value::from("Erika")));
    assert_eq!(id_token.claim("birthdate"), Some(&Value::from("1964-08-12")));
    app.stop().await
}
backend_test!(the_demo_service_logs_in_through_the_saml_simulator);

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    html.split(&marker).nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().replace("&amp;", "&")
}

pub async fn logging_out_after_a_saml_login_ends_pforte_s_part_and_returns_to_the_service(
    ctx: TestContext,
) -> TestResult {
    let app = spawn(&ctx, "").await;
    let mut flight = start(&app, SUBSTANTIAL).await;
    let answer = flight.post(&app, &flight.answer(&app).signed_encrypted()).await;
    let tokens = tokens_of(&app, &answer).await?;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", tokens["id_token"].as_str().unwrap_or_default())
        .append_pair("post_logout_redirect_uri", &app.url("/demo"))
        .append_pair("state", "bye")
        .finish();
    // The IdP's metadata offers no Single Logout: pforte's part ends, and the browser goes straight back.
    let done = flight.browser.get(&app.url(&format!("/logout?{query}"))).await;
    assert_eq!(done.status(), 303, "{}", done.text().await?);
    assert_eq!(location(&done), app.url("/demo?state=bye"));
    app.stop().await
}
backend_test!(logging_out_after_a_saml_login_ends_pforte_s_part_and_returns_to_the_service);
