//! SAML Single Logout (issue 12 item 7): RP-initiated logout at pforte sends the browser to the IdP
//! with a signed LogoutRequest for that login, and the IdP's LogoutResponse comes back to
//! `/saml/<id>/slo` on the way to the service. End to end through the simulator, and each forged
//! LogoutResponse against the test IdP of `saml_idp.rs`.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Utc;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use serde_json::Value;

use crate::helpers::{TestApp, TestContext, TestResult};
use crate::login::{citizen_request, location, verify_id_token, Browser};
use crate::oidc::with;
use crate::saml::{self, tokens_of, PROVIDER};
use crate::saml_idp::{instant, keys, IDP_ENTITY_ID};

const SUBSTANTIAL: &str = "http://eidas.europa.eu/LoA/substantial";
const IDP_SLO: &str = "https://idp.test/slo";
const SLO_SERVICE: &str = r#"<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.test/slo"/>"#;
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    html.split(&marker).nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().replace("&amp;", "&")
}

/// Logs in at a SAML simulator (`path`, registry entry `provider`) as `persona` at `level`; the
/// service's tokens.
pub async fn simulator_login(
    app: &TestApp,
    browser: &mut Browser,
    (provider, path): (&str, &str),
    scope: &str,
    (persona, level): (&str, &str),
) -> anyhow::Result<Value> {
    let params = with(citizen_request(app, scope, SUBSTANTIAL), "idp_hint", Some(provider));
    let to_idp = browser.authorize(&params).await;
    anyhow::ensure!(to_idp.status() == 303, "to the IdP: {}", to_idp.status());
    let page = browser.get(&location(&to_idp)).await;
    anyhow::ensure!(page.status() == 200, "the simulator accepts pforte's request");
    let ticket = field(&page.text().await?, "ticket");
    let decided = browser
        .post(
            &app.url(&format!("{path}/sso/decide")),
            &[("ticket", &ticket), ("persona", persona), ("level", level), ("action", "login")],
        )
        .await;
    let html = decided.text().await?;
    let posted = browser
        .post(
            &app.url(&format!("/saml/{provider}/acs")),
            &[("SAMLResponse", &field(&html, "SAMLResponse")), ("RelayState", &field(&html, "RelayState"))],
        )
        .await;
    anyhow::ensure!(posted.status() == 303, "the ACS takes the Response");
    let answer = browser.get(&location(&posted)).await;
    tokens_of(app, &answer).await
}

fn logout_url(app: &TestApp, id_token: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", &app.url("/demo"))
        .append_pair("state", "bye")
        .finish();
    app.url(&format!("/logout?{query}"))
}

fn query_of(location: &str) -> BTreeMap<String, String> {
    url::Url::parse(location).map(|u| u.query_pairs().into_owned().collect()).unwrap_or_default()
}

fn inflate(base64: &str) -> String {
    let deflated = STANDARD.decode(base64).expect("base64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice()).read_to_string(&mut xml).expect("inflate");
    xml
}

pub async fn logout_through_the_saml_simulator_ends_both_sessions_and_returns_to_the_service(
    ctx: TestContext,
) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let sim = ("bundid-saml-sim", "/dev/bundid-saml");
    let tokens = simulator_login(&app, &mut browser, sim, "openid profile", ("erika", "STORK-QAA-Level-3")).await?;
    let id_token = tokens["id_token"].as_str().unwrap_or_default();
    let claims = verify_id_token(&app, id_token).await?;
    assert!(claims.claim("sid").and_then(Value::as_str).is_some_and(|sid| sid.len() >= 32), "the ID token has a sid");

    let to_idp = browser.get(&logout_url(&app, id_token)).await;
    assert_eq!(to_idp.status(), 303);
    let slo_request = location(&to_idp);
    assert!(slo_request.starts_with(&app.url("/dev/bundid-saml/slo?SAMLRequest=")), "{slo_request}");
    let xml = inflate(&query_of(&slo_request)["SAMLRequest"]);
    assert!(xml.contains(&format!(r#"NameQualifier="{}""#, app.url("/dev/bundid-saml"))), "as received: {xml}");
    assert!(xml.contains("<samlp:SessionIndex>_s"), "{xml}");
    assert!(xml.contains(&format!(r#"Destination="{}""#, app.url("/dev/bundid-saml/slo"))), "{xml}");

    let back = browser.get(&slo_request).await;
    assert_eq!(back.status(), 303, "the simulator verified the LogoutRequest");
    let slo_response = location(&back);
    assert!(slo_response.starts_with(&app.url("/saml/bundid-saml-sim/slo?SAMLResponse=")), "{slo_response}");
    let done = browser.get(&slo_response).await;
    assert_eq!(done.status(), 303, "{}", done.text().await?);
    assert_eq!(location(&done), app.url("/demo?state=bye"));

    // Single use: the same LogoutResponse again is refused with a page, not a crash.
    let replayed = browser.get(&slo_response).await;
    assert_eq!(replayed.status(), 400);
    assert!(replayed.text().await?.contains("Abmeldung nicht bestätigt"));
    // The simulator ended its session: the same LogoutRequest finds none there.
    let again = browser.get(&slo_request).await;
    let xml = inflate(&query_of(&location(&again))["SAMLResponse"]);
    assert!(xml.contains("status:UnknownPrincipal"), "{xml}");
    // pforte's record was used: a second logout with the same token goes straight to the service.
    let second = browser.get(&logout_url(&app, id_token)).await;
    assert_eq!(location(&second), app.url("/demo?state=bye"));
    app.stop().await
}
backend_test!(logout_through_the_saml_simulator_ends_both_sessions_and_returns_to_the_service);

pub async fn a_logout_page_never_confirmed_leaves_single_logout_intact(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut browser = Browser::new(&app);
    let sim = ("bundid-saml-sim", "/dev/bundid-saml");
    let tokens = simulator_login(&app, &mut browser, sim, "openid profile", ("erika", "STORK-QAA-Level-3")).await?;
    let id_token = tokens["id_token"].as_str().unwrap_or_default();
    // Another site replays the token for another client: pforte asks instead of going to the IdP.
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", id_token)
        .append_pair("client_id", "someone-else")
        .finish();
    let mut stranger = Browser::new(&app);
    let page = stranger.get(&app.url(&format!("/logout?{query}"))).await;
    assert_eq!(page.status(), 200, "a confirmation page");
    // The person's own logout still reaches the IdP and completes.
    let to_idp = browser.get(&logout_url(&app, id_token)).await;
    assert!(location(&to_idp).starts_with(&app.url("/dev/bundid-saml/slo?SAMLRequest=")), "{}", location(&to_idp));
    let back = browser.get(&location(&to_idp)).await;
    let done = browser.get(&location(&back)).await;
    assert_eq!(location(&done), app.url("/demo?state=bye"));
    app.stop().await
}
backend_test!(a_logout_page_never_confirmed_leaves_single_logout_intact);

/// A login at the test IdP (which offers Single Logout) and the logout's LogoutRequest, checked as
/// the IdP checks it: pforte's signature over the query, then its ID.
async fn logged_out_at_test_idp(ctx: &TestContext) -> anyhow::Result<(TestApp, Browser, String)> {
    let app = saml::spawn(ctx, SLO_SERVICE).await;
    let mut flight = saml::start(&app, SUBSTANTIAL).await;
    let answer = flight.post(&app, &flight.answer(&app).signed_encrypted()).await;
    let tokens = tokens_of(&app, &answer).await?;
    let mut browser = flight.browser;
    let to_idp = browser.get(&logout_url(&app, tokens["id_token"].as_str().unwrap_or_default())).await;
    anyhow::ensure!(to_idp.status() == 303, "logout goes to the IdP");
    let target = location(&to_idp);
    anyhow::ensure!(target.starts_with(&format!("{IDP_SLO}?SAMLRequest=")), "{target}");
    let query = url::Url::parse(&target)?.query().unwrap_or_default().to_owned();
    let (signed, signature) = query.rsplit_once("&Signature=").ok_or_else(|| anyhow::anyhow!("unsigned"))?;
    let signature = STANDARD.decode(
        url::form_urlencoded::parse(format!("s={signature}").as_bytes()).next().unwrap_or_default().1.as_bytes(),
    )?;
    let sp_key = keys().sp.cert.public_key()?;
    let mut verifier = openssl::sign::Verifier::new(MessageDigest::sha256(), &sp_key)?;
    verifier.update(signed.as_bytes())?;
    anyhow::ensure!(verifier.verify(&signature)?, "pforte's LogoutRequest signature does not verify");
    let xml = inflate(&query_of(&target)["SAMLRequest"]);
    anyhow::ensure!(xml.contains(">transient-4711</saml:NameID>"), "the NameID as received: {xml}");
    let id = xml.split(" ID=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_owned();
    Ok((app, browser, id))
}

/// What a LogoutResponse says; each forged variant changes one thing.
struct LogoutAnswer {
    in_response_to: String,
    destination: String,
    issuer: String,
    status: String,
    key: &'static PKey<Private>,
}

impl LogoutAnswer {
    fn to(app: &TestApp, request_id: &str) -> LogoutAnswer {
        LogoutAnswer {
            in_response_to: request_id.to_owned(),
            destination: app.url(&format!("/saml/{PROVIDER}/slo")),
            issuer: IDP_ENTITY_ID.to_owned(),
            status: format!(r#"<samlp:StatusCode Value="{SUCCESS}"/>"#),
            key: &keys().idp.key,
        }
    }

    /// The LogoutResponse over the HTTP-Redirect binding, its query signed with `key`.
    fn url(&self, app: &TestApp) -> String {
        let xml = format!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lr{}" Version="2.0" IssueInstant="{}" Destination="{}" InResponseTo="{}"><saml:Issuer>{}</saml:Issuer><samlp:Status>{}</samlp:Status></samlp:LogoutResponse>"#,
            uuid::Uuid::new_v4().simple(),
            instant(Utc::now()),
            self.destination,
            self.in_response_to,
            self.issuer,
            self.status
        );
        app.url(&format!("/saml/{PROVIDER}/slo?{}", signed_query("SAMLResponse", &xml, None, self.key)))
    }
}

/// The HTTP-Redirect binding's query: `parameter` deflated and base64, RelayState, SigAlg, and the
/// signature over exactly that (SAML Bindings 3.4.4.1).
fn signed_query(parameter: &str, xml: &str, relay_state: Option<&str>, key: &PKey<Private>) -> String {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(xml.as_bytes()).expect("deflate");
    let encoded = STANDARD.encode(encoder.finish().expect("deflate"));
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair(parameter, &encoded);
    if let Some(relay_state) = relay_state {
        query.append_pair("RelayState", relay_state);
    }
    let query = query.append_pair("SigAlg", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256").finish();
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), key).expect("signer");
    signer.update(query.as_bytes()).expect("sign");
    let signature = STANDARD.encode(signer.sign_to_vec().expect("sign"));
    let signature: String = url::form_urlencoded::byte_serialize(signature.as_bytes()).collect();
    format!("{query}&Signature={signature}")
}

/// The forged LogoutResponse is refused with a page; the honest one still works afterwards, so the
/// refusal did not use up the logout.
async fn refused(ctx: TestContext, forge: impl FnOnce(&mut LogoutAnswer, &TestApp)) -> TestResult {
    let (app, mut browser, request_id) = logged_out_at_test_idp(&ctx).await?;
    let mut forged = LogoutAnswer::to(&app, &request_id);
    forge(&mut forged, &app);
    let answer = browser.get(&forged.url(&app)).await;
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await?.contains("Abmeldung nicht bestätigt"));
    let honest = browser.get(&LogoutAnswer::to(&app, &request_id).url(&app)).await;
    assert_eq!(location(&honest), app.url("/demo?state=bye"));
    app.stop().await
}

pub async fn an_honest_logout_response_returns_to_the_service_once(ctx: TestContext) -> TestResult {
    let (app, mut browser, request_id) = logged_out_at_test_idp(&ctx).await?;
    let url = LogoutAnswer::to(&app, &request_id).url(&app);
    let done = browser.get(&url).await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), app.url("/demo?state=bye"));
    let replayed = browser.get(&url).await;
    assert_eq!(replayed.status(), 400, "a replayed LogoutResponse is refused");
    assert!(replayed.text().await?.contains("keine offene Abmeldung"));
    app.stop().await
}
backend_test!(an_honest_logout_response_returns_to_the_service_once);

pub async fn a_tampered_logout_response_signature_is_refused(ctx: TestContext) -> TestResult {
    let (app, mut browser, request_id) = logged_out_at_test_idp(&ctx).await?;
    let url = LogoutAnswer::to(&app, &request_id).url(&app);
    let (head, signature) = url.rsplit_once("&Signature=").unwrap_or_default();
    let flipped =
        if signature.starts_with('A') { signature.replacen('A', "B", 1) } else { format!("A{}", &signature[1..]) };
    let answer = browser.get(&format!("{head}&Signature={flipped}")).await;
    assert_eq!(answer.status(), 400);
    let unsigned = browser.get(head).await;
    assert_eq!(unsigned.status(), 400, "an unsigned LogoutResponse is refused");
    assert_eq!(location(&browser.get(&url).await), app.url("/demo?state=bye"));
    app.stop().await
}
backend_test!(a_tampered_logout_response_signature_is_refused);

pub async fn a_logout_response_signed_by_another_key_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |answer, _| answer.key = &keys().forger.key).await
}
backend_test!(a_logout_response_signed_by_another_key_is_refused);

pub async fn a_logout_response_to_another_request_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |answer, _| answer.in_response_to = "_made-up".into()).await
}
backend_test!(a_logout_response_to_another_request_is_refused);

pub async fn a_logout_response_to_another_destination_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |answer, app| answer.destination = app.url("/saml/bundid-saml-sim/slo")).await
}
backend_test!(a_logout_response_to_another_destination_is_refused);

pub async fn a_logout_response_from_another_issuer_is_refused(ctx: TestContext) -> TestResult {
    refused(ctx, |answer, _| answer.issuer = "https://forger.test/saml".into()).await
}
backend_test!(a_logout_response_from_another_issuer_is_refused);

pub async fn a_failed_logout_at_the_idp_still_ends_at_the_service_and_says_so(ctx: TestContext) -> TestResult {
    let (app, mut browser, request_id) = logged_out_at_test_idp(&ctx).await?;
    let mut answer = LogoutAnswer::to(&app, &request_id);
    answer.status = r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:PartialLogout"/></samlp:StatusCode>"#.into();
    let page = browser.get(&answer.url(&app)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await?;
    assert!(html.contains("kann noch eine Sitzung halten"), "{html}");
    assert!(html.contains(&format!(r#"href="{}""#, app.url("/demo?state=bye"))), "on to the service: {html}");
    app.stop().await
}
backend_test!(a_failed_logout_at_the_idp_still_ends_at_the_service_and_says_so);

/// A LogoutRequest the test IdP starts, to pforte's SingleLogoutService (the path and query).
fn idp_logout_request(destination: &str, key: &PKey<Private>) -> String {
    let xml = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_idp-logout-1" Version="2.0" IssueInstant="{}" Destination="{destination}"><saml:Issuer>{IDP_ENTITY_ID}</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient">transient-4711</saml:NameID><samlp:SessionIndex>_s1</samlp:SessionIndex></samlp:LogoutRequest>"#,
        instant(Utc::now())
    );
    format!("/saml/{PROVIDER}/slo?{}", signed_query("SAMLRequest", &xml, Some("rs 1"), key))
}

pub async fn a_logout_request_the_idp_starts_is_answered_with_a_signed_logout_response(ctx: TestContext) -> TestResult {
    let app = saml::spawn(&ctx, SLO_SERVICE).await;
    let slo = app.url(&format!("/saml/{PROVIDER}/slo"));
    let answer = app.get(&idp_logout_request(&slo, &keys().idp.key)).await;
    assert_eq!(answer.status(), 303, "{}", answer.text().await?);
    let target = location(&answer);
    assert!(target.starts_with(&format!("{IDP_SLO}?SAMLResponse=")), "{target}");
    let query = url::Url::parse(&target)?.query().unwrap_or_default().to_owned();
    let (signed, signature) = query.rsplit_once("&Signature=").unwrap_or_default();
    let signature = STANDARD.decode(
        url::form_urlencoded::parse(format!("s={signature}").as_bytes()).next().unwrap_or_default().1.as_bytes(),
    )?;
    let sp_key = keys().sp.cert.public_key()?;
    let mut verifier = openssl::sign::Verifier::new(MessageDigest::sha256(), &sp_key)?;
    verifier.update(signed.as_bytes())?;
    assert!(verifier.verify(&signature)?, "pforte signs its LogoutResponse");
    let pairs = query_of(&target);
    assert_eq!(pairs["RelayState"], "rs 1", "the RelayState goes back as it came");
    let xml = inflate(&pairs["SAMLResponse"]);
    assert!(xml.contains(r#"InResponseTo="_idp-logout-1""#), "{xml}");
    assert!(xml.contains(&format!(r#"Destination="{IDP_SLO}""#)), "{xml}");
    assert!(xml.contains(&format!("<saml:Issuer>{}</saml:Issuer>", saml::sp_entity_id(&app))), "{xml}");
    assert!(xml.contains(SUCCESS), "{xml}");

    let forged = app.get(&idp_logout_request(&slo, &keys().forger.key)).await;
    assert_eq!(forged.status(), 400, "a LogoutRequest signed by another key is refused");
    let elsewhere = app.get(&idp_logout_request("https://other-sp.example/slo", &keys().idp.key)).await;
    assert_eq!(elsewhere.status(), 400, "a LogoutRequest for another Destination is refused");
    app.stop().await
}
backend_test!(a_logout_request_the_idp_starts_is_answered_with_a_signed_logout_response);

pub async fn an_unknown_provider_or_a_logout_request_at_the_slo_is_answered_with_a_page(
    ctx: TestContext,
) -> TestResult {
    let app = saml::spawn(&ctx, SLO_SERVICE).await;
    let unknown = app.get("/saml/nobody/slo?SAMLResponse=x&SigAlg=y&Signature=z").await;
    assert_eq!(unknown.status(), 404);
    let request = app.get(&format!("/saml/{PROVIDER}/slo?SAMLRequest=x")).await;
    assert_eq!(request.status(), 400);
    let garbage = app.get(&format!("/saml/{PROVIDER}/slo?SAMLResponse=%%%&SigAlg=&Signature=")).await;
    assert_eq!(garbage.status(), 400);
    app.stop().await
}
backend_test!(an_unknown_provider_or_a_logout_request_at_the_slo_is_answered_with_a_page);
