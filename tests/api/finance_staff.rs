//! Finance staff in the browser, as a browser sees it over real HTTP: sign-in with the authority's
//! staff identity provider (the `dienstkonto` simulator, or a mock provider that misbehaves), the
//! opaque session cookie, the idle timeout and the absolute lifetime, sign-out, and the form tokens of
//! every form. Uploads are in `finance_uploads`.

use std::collections::BTreeMap;
use std::sync::Arc;

use pforte::clock::ManualClock;

use crate::finance::finance_token;
use crate::helpers::{copy_dir, TestApp, TestContext, TestResult, MANIFEST_DIR};
use crate::reconciliation::settlement;
use crate::upstream::mock_op::{MockOp, TokenFault};

const STAFF_PROVIDER: &str = "dienstkonto-sim";
const STAFF_LEVEL: &str = "dienstkonto-mfa";
const SESSION_COOKIE: &str = "pforte-finance-session";
const SIGN_IN_COOKIE: &str = "pforte-finance-signin";

/// A browser at the finance pages: keeps its cookies by name and follows nothing by itself.
pub struct Clerk<'a> {
    app: &'a TestApp,
    pub cookies: BTreeMap<String, String>,
    /// Every `Set-Cookie` line received, for checking attributes.
    pub set_cookies: Vec<String>,
}

impl<'a> Clerk<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Clerk { app, cookies: BTreeMap::new(), set_cookies: Vec::new() }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap_or_default().to_owned();
            if let Some((name, value)) = text.split(';').next().and_then(|pair| pair.split_once('=')) {
                if value.is_empty() || text.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
            self.set_cookies.push(text);
        }
    }

    fn absolute(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            self.app.url(path_or_url)
        }
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let request = self.app.client.get(self.absolute(path)).header("cookie", self.cookie_header());
        let response = request.send().await.expect("GET");
        self.remember(&response);
        response
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let request = self.app.client.post(self.absolute(path)).header("cookie", self.cookie_header()).form(form);
        let response = request.send().await.expect("POST");
        self.remember(&response);
        response
    }

    /// A multipart form as a browser sends it: the text fields, then the file.
    pub async fn upload(&mut self, path: &str, fields: &[(&str, &str)], file: (&str, &[u8])) -> reqwest::Response {
        let boundary = "----pforte-test-boundary-7d41";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n",
                file.0
            )
            .as_bytes(),
        );
        body.extend_from_slice(file.1);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let request = self
            .app
            .client
            .post(self.absolute(path))
            .header("cookie", self.cookie_header())
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body);
        let response = request.send().await.expect("POST multipart");
        self.remember(&response);
        response
    }

    /// The sign-in page's form token (and the sign-in cookie it belongs to).
    pub async fn sign_in_form_token(&mut self) -> String {
        let page = self.get("/finance/login").await;
        assert_eq!(page.status(), 200);
        hidden(&page.text().await.expect("page"), "csrf").expect("form token")
    }

    /// From the sign-in page to the staff provider: returns the redirect to its authorization endpoint.
    pub async fn start_staff_sign_in(&mut self, provider: &str) -> reqwest::Response {
        let csrf = self.sign_in_form_token().await;
        self.post("/finance/login/staff", &[("csrf", &csrf), ("provider", provider)]).await
    }

    /// At the staff simulator: logs in as `persona`; returns the simulator's redirect back to pforte.
    pub async fn at_simulator(&mut self, upstream: reqwest::Response, persona: &str) -> reqwest::Response {
        assert_eq!(upstream.status(), 303, "to the staff provider");
        let location = location(&upstream);
        assert!(location.contains("/dev/dienstkonto/authorize?"), "{location}");
        let page = self.get(&location).await;
        assert_eq!(page.status(), 200, "simulator page");
        let request = hidden(&page.text().await.expect("page"), "request").expect("request id");
        let decide = location.split("/authorize").next().expect("simulator base").to_owned() + "/authorize/decide";
        let form = [("request", request.as_str()), ("persona", persona), ("level", STAFF_LEVEL), ("action", "login")];
        let back = self.post(&decide, &form).await;
        assert_eq!(back.status(), 303, "back to pforte");
        back
    }

    /// The whole staff sign-in; returns pforte's answer at its callback.
    pub async fn sign_in(&mut self, persona: &str) -> reqwest::Response {
        let upstream = self.start_staff_sign_in(STAFF_PROVIDER).await;
        let back = self.at_simulator(upstream, persona).await;
        self.get(&location(&back)).await
    }

    /// Signs in as München's clerk and opens the reconciliation page; returns its HTML.
    pub async fn signed_in_page(&mut self) -> String {
        let answer = self.sign_in("kasse-muenchen").await;
        assert_eq!(answer.status(), 303, "signed in");
        let page = self.get(&location(&answer)).await;
        assert_eq!(page.status(), 200, "the page");
        page.text().await.expect("page")
    }

    pub fn session(&self) -> Option<String> {
        self.cookies.get(SESSION_COOKIE).cloned()
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    Some(html.split(&marker).nth(1)?.split('"').next()?.to_owned())
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub async fn audit_events(app: &TestApp) -> anyhow::Result<Vec<(String, String, String)>> {
    let rows = crate::audit::chained_events(app).await?;
    Ok(rows.into_iter().map(|r| (r.event, r.actor, r.details)).collect())
}

const PAGE: &str = "/finance/09162000/abgleich?from=2026-11-01&to=2026-11-30";

pub async fn a_clerk_signs_in_with_the_staff_provider_and_holds_only_an_opaque_session_id(
    ctx: TestContext,
) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut clerk = Clerk::new(&app);
    let upstream = clerk.start_staff_sign_in(STAFF_PROVIDER).await;
    let authorization = url::Url::parse(&location(&upstream))?;
    let query: BTreeMap<String, String> = authorization.query_pairs().into_owned().collect();
    assert_eq!(query.get("code_challenge_method").map(String::as_str), Some("S256"));
    // At least 128 random bits each (22 base64url characters).
    for parameter in ["state", "nonce", "code_challenge"] {
        assert!(query.get(parameter).is_some_and(|v| v.len() >= 22), "{parameter} in {authorization}");
    }
    let redirect_uri = query.get("redirect_uri").cloned().unwrap_or_default();
    assert_eq!(redirect_uri, app.url("/finance/login/callback/dienstkonto-sim"));

    let back = clerk.at_simulator(upstream, "kasse-muenchen").await;
    let callback = location(&back);
    let answer = clerk.get(&callback).await;
    assert_eq!(answer.status(), 303);
    assert!(location(&answer).starts_with("/finance/09162000/abgleich?from="), "{}", location(&answer));
    let set = clerk.set_cookies.iter().find(|c| c.starts_with(SESSION_COOKIE)).cloned().unwrap_or_default();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/finance", "Max-Age=28800"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    assert!(!set.contains("Secure"), "plain http public URL: no Secure ({set})");
    let session = clerk.session().expect("a session cookie");
    assert_eq!(session.len(), 43, "32 random bytes, base64url: {session}");
    assert!(!session.starts_with("pft_") && !session.contains('.'), "neither a finance token nor a JWT");
    assert!(!clerk.cookies.contains_key(SIGN_IN_COOKIE), "the sign-in cookie is forgotten");

    let pool = crate::keys::any_pool(&ctx.database_url).await?;
    let stored: Vec<String> = sqlx::query_scalar("SELECT session_hash FROM finance_sessions").fetch_all(&pool).await?;
    pool.close().await;
    assert_eq!(stored, vec![sha256_hex(&session)], "only the hash is stored");

    let page = clerk.get(&location(&answer)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await?;
    assert!(html.contains("<span id=\"staff-name\">Katrin Kassner</span>"), "{html}");
    assert!(html.contains("id=\"upload\"") && html.contains("id=\"sign-out\""), "upload and sign-out forms");
    assert!(!html.contains(&session), "the page never shows the session id");
    let overview = clerk.get("/finance").await.text().await?;
    let tenants = overview.split("id=\"tenants\"").nth(1).unwrap_or_default();
    assert!(tenants.contains("/finance/09162000/abgleich?from=") && !tenants.contains("03241001"), "{overview}");

    // The answer is good once: the same state again finds no sign-in.
    let mut replay = Clerk::new(&app);
    replay.cookies = clerk.cookies.clone();
    assert_eq!(replay.get(&callback).await.status(), 403);

    let events = audit_events(&app).await?;
    let signed_in = events.iter().find(|(event, _, _)| event == "finance.signed_in").expect("audited sign-in");
    assert_eq!(signed_in.1, "dienstkonto-sim/dienstkonto-sim-0001-kasse-muenchen");
    assert!(signed_in.2.contains("09162000") && !signed_in.2.contains("Kassner"), "{}", signed_in.2);
    assert!(events.iter().any(|(e, _, d)| e == "finance.access_allowed" && d.contains("page.view")));
    for (_, actor, details) in &events {
        assert!(!details.contains(&session) && !actor.contains(&session), "no session id in the audit log");
    }
    app.stop().await
}
backend_test!(a_clerk_signs_in_with_the_staff_provider_and_holds_only_an_opaque_session_id);

pub async fn a_staff_member_outside_the_finance_group_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut clerk = Clerk::new(&app);
    let answer = clerk.sign_in("bauamt").await;
    assert_eq!(answer.status(), 403);
    assert!(answer.text().await?.contains("keinen Zugang"));
    assert!(clerk.session().is_none(), "no session cookie");
    let pool = crate::keys::any_pool(&ctx.database_url).await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM finance_sessions").fetch_one(&pool).await?;
    pool.close().await;
    assert_eq!(count, 0);
    let events = audit_events(&app).await?;
    assert!(
        events.iter().any(|(e, actor, d)| e == "finance.sign_in_refused"
            && actor == "dienstkonto-sim/dienstkonto-sim-0003-bauamt"
            && d.contains("no_finance_access")),
        "{events:?}"
    );
    // München's clerk may not act for Hannover.
    let mut munich = Clerk::new(&app);
    munich.signed_in_page().await;
    let other = munich.get("/finance/03241001/abgleich?from=2026-11-01&to=2026-11-30").await;
    assert_eq!(other.status(), 403);
    app.stop().await
}
backend_test!(a_staff_member_outside_the_finance_group_is_refused);

pub async fn a_sign_in_answer_with_a_foreign_or_forged_state_is_refused(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    // Started in one browser, answered in another: the state is bound to the first one's cookie.
    let mut first = Clerk::new(&app);
    let upstream = first.start_staff_sign_in(STAFF_PROVIDER).await;
    let back = first.at_simulator(upstream, "kasse-muenchen").await;
    let mut second = Clerk::new(&app);
    second.sign_in_form_token().await;
    let answer = second.get(&location(&back)).await;
    assert_eq!(answer.status(), 403);
    assert!(second.session().is_none());
    // It was used up by that attempt: the right browser cannot redeem it afterwards either.
    assert_eq!(first.get(&location(&back)).await.status(), 403);
    assert!(first.session().is_none());

    // A code with a state pforte never issued.
    let mut third = Clerk::new(&app);
    let upstream = third.start_staff_sign_in(STAFF_PROVIDER).await;
    let back = third.at_simulator(upstream, "kasse-muenchen").await;
    let mut forged = url::Url::parse(&location(&back))?;
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .into_owned()
        .map(|(k, v)| if k == "state" { (k, "forged-state".to_owned()) } else { (k, v) })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    assert_eq!(third.get(forged.as_str()).await.status(), 403);
    assert!(third.session().is_none());
    let without_state = location(&back).split("state=").next().unwrap_or_default().to_owned();
    assert_eq!(third.get(&without_state).await.status(), 403);

    let counts = crate::finance::refused_counts(&app, "finance.sign_in_refused").await?;
    assert_eq!(counts.iter().map(|(_, _, n)| n).sum::<i64>(), 4, "each refused answer is counted: {counts:?}");
    assert!(counts.iter().all(|(subject, _, _)| subject == STAFF_PROVIDER), "{counts:?}");
    let chained = audit_events(&app).await?.into_iter().filter(|(e, _, _)| e == "finance.sign_in_refused").count();
    assert_eq!(chained, 0, "anyone can cause these: none is a chain row");
    app.stop().await
}
backend_test!(a_sign_in_answer_with_a_foreign_or_forged_state_is_refused);

/// A staff provider whose ID token carries another login's nonce (the mock OP), named by München.
pub async fn an_id_token_with_another_nonce_opens_no_session(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let op = MockOp::start(clock.clone()).await?;
    op.set(|op| op.behaviour.token = TokenFault::WrongNonce);
    let providers = ctx.dir.path().join("staff-providers");
    let tenants = ctx.dir.path().join("staff-tenants");
    copy_dir(std::path::Path::new(&format!("{MANIFEST_DIR}/providers")), &providers)?;
    copy_dir(std::path::Path::new(&format!("{MANIFEST_DIR}/config/tenants")), &tenants)?;
    let entry = format!(
        "kind = \"oidc\"\ndisplay_name = \"Mock staff\"\naccount_type = \"person\"\nissuer = \"{}\"\n\
         client_id = \"pforte\"\nscopes = [\"openid\"]\n\n[client_auth]\nmethod = \"client_secret_basic\"\n\
         secret = \"plain:{}\"\n\n[claims]\ngroups = \"groups\"\n\n[levels]\nSTORK-QAA-Level-3 = \"substantial\"\n",
        op.issuer,
        crate::upstream::mock_op::CLIENT_SECRET
    );
    std::fs::write(providers.join("identity/mock-staff.toml"), entry)?;
    let munich = tenants.join("09162000.toml");
    std::fs::write(
        &munich,
        std::fs::read_to_string(&munich)?.replace("provider = \"dienstkonto-sim\"", "provider = \"mock-staff\""),
    )?;
    let (p, t) = (providers.display().to_string(), tenants.display().to_string());
    let app = ctx
        .spawn_app_with(move |f| f.merge(("registry.providers", p)).merge(("registry.tenants", t)), Arc::new(clock))
        .await;

    let mut clerk = Clerk::new(&app);
    // München's staff provider is on another origin, Hannover's (the simulator) at pforte's own: the
    // sign-in page's forms may lead to the one besides 'self', and nowhere else.
    let sign_in = clerk.get("/finance/login").await;
    let policy = sign_in.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mock_origin = url::Url::parse(op.issuer.as_str())?.origin().ascii_serialization();
    assert!(policy.contains(&format!("form-action 'self' {mock_origin};")), "{policy}");
    let upstream = clerk.start_staff_sign_in("mock-staff").await;
    assert_eq!(upstream.status(), 303);
    let callback = op.authorize(&url::Url::parse(&location(&upstream))?);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", callback.code.as_deref().unwrap_or_default())
        .append_pair("state", callback.state.as_deref().unwrap_or_default())
        .append_pair("iss", callback.iss.as_deref().unwrap_or_default())
        .finish();
    let answer = clerk.get(&format!("/finance/login/callback/mock-staff?{query}")).await;
    assert_eq!(answer.status(), 403);
    assert!(answer.text().await?.contains("ungültig"));
    assert!(clerk.session().is_none());
    let counts = crate::finance::refused_counts(&app, "finance.sign_in_refused").await?;
    assert_eq!(counts, vec![("mock-staff".to_owned(), "invalid_response".to_owned(), 1)], "counted, not chained");
    assert_eq!(op.hits().token, 1, "the code was redeemed, and the token refused");
    app.stop().await
}
backend_test!(an_id_token_with_another_nonce_opens_no_session);

pub async fn a_session_ends_after_the_idle_timeout_and_after_its_lifetime(ctx: TestContext) -> TestResult {
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = ctx
        .spawn_app_with(
            |f| f.merge(("finance.session_idle_secs", 1800)).merge(("finance.session_max_secs", 3600)),
            Arc::new(clock.clone()),
        )
        .await;
    let mut clerk = Clerk::new(&app);
    clerk.signed_in_page().await;
    // Each request restarts the idle time...
    clock.advance_secs(29 * 60);
    assert_eq!(clerk.get(PAGE).await.status(), 200);
    clock.advance_secs(29 * 60);
    assert_eq!(clerk.get(PAGE).await.status(), 200);
    // ...but not the lifetime: an hour after sign-in the session is over, however busy.
    clock.advance_secs(3 * 60);
    let ended = clerk.get(PAGE).await;
    assert_eq!((ended.status().as_u16(), location(&ended)), (303, "/finance/login".to_owned()));

    // Idle: 30 minutes without a request.
    let mut idle = Clerk::new(&app);
    idle.signed_in_page().await;
    clock.advance_secs(30 * 60);
    let expired = idle.get(PAGE).await;
    assert_eq!((expired.status().as_u16(), location(&expired)), (303, "/finance/login".to_owned()));

    // The purge removes the session past its lifetime (and the name it shows), not the younger one.
    assert_eq!(app.state.staff.purge().await?, 1);
    let pool = crate::keys::any_pool(&ctx.database_url).await?;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM finance_sessions").fetch_one(&pool).await?;
    pool.close().await;
    assert_eq!(left, 1);
    app.stop().await
}
backend_test!(a_session_ends_after_the_idle_timeout_and_after_its_lifetime);

pub async fn signing_out_ends_the_session_and_its_cookie_is_refused_afterwards(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let mut clerk = Clerk::new(&app);
    let html = clerk.signed_in_page().await;
    let csrf = hidden(&html, "csrf").expect("form token");
    let old = clerk.session().expect("session");

    let out = clerk.post("/finance/logout", &[("csrf", &csrf)]).await;
    assert_eq!((out.status().as_u16(), location(&out)), (303, "/finance/login".to_owned()));
    assert!(clerk.session().is_none(), "the cookie is cleared");
    assert!(clerk.set_cookies.iter().any(|c| c.starts_with(&format!("{SESSION_COOKIE}=;")) && c.contains("Max-Age=0")));

    // Someone who kept the cookie gets nowhere with it.
    let mut replay = Clerk::new(&app);
    replay.cookies.insert(SESSION_COOKIE.to_owned(), old);
    let page = replay.get(PAGE).await;
    assert_eq!((page.status().as_u16(), location(&page)), (303, "/finance/login".to_owned()));
    assert_eq!(replay.get("/finance").await.status(), 303);
    let events = audit_events(&app).await?;
    assert_eq!(events.iter().filter(|(e, _, _)| e == "finance.signed_out").count(), 1);
    app.stop().await
}
backend_test!(signing_out_ends_the_session_and_its_cookie_is_refused_afterwards);

pub async fn every_form_refuses_a_missing_or_wrong_form_token(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = finance_token(&ctx, "09162000")?;

    // The token sign-in form.
    let mut visitor = Clerk::new(&app);
    let right = visitor.sign_in_form_token().await;
    for csrf in [None, Some("wrong"), Some(sha256_hex("guess").as_str())] {
        let mut form = vec![("tenant", "09162000"), ("token", token.as_str())];
        form.extend(csrf.map(|c| ("csrf", c)));
        let refused = visitor.post("/finance/login", &form).await;
        assert_eq!(refused.status(), 403, "token form with {csrf:?}");
        assert!(visitor.session().is_none());
    }
    // Another browser's token does not fit this browser's cookie.
    let mut other = Clerk::new(&app);
    other.sign_in_form_token().await;
    let crossed = other.post("/finance/login", &[("csrf", &right), ("tenant", "09162000"), ("token", &token)]).await;
    assert_eq!(crossed.status(), 403);

    // The staff sign-in form: no way to the provider.
    for csrf in ["", "wrong"] {
        let refused = visitor.post("/finance/login/staff", &[("csrf", csrf), ("provider", STAFF_PROVIDER)]).await;
        assert_eq!(refused.status(), 403, "staff form with {csrf:?}");
        assert!(refused.headers().get("location").is_none());
    }

    // Sign-out and upload, with a session.
    let mut clerk = Clerk::new(&app);
    let html = clerk.signed_in_page().await;
    let session_token = hidden(&html, "csrf").expect("form token");
    for csrf in ["", "wrong", right.as_str()] {
        let refused = clerk.post("/finance/logout", &[("csrf", csrf)]).await;
        assert_eq!(refused.status(), 403, "sign-out with {csrf:?}");
        let file = settlement(&[("T-1", "Zahlung", "12,00", "0,30", "PO-1")]);
        let fields = [("csrf", csrf), ("kind", "settlement"), ("provider", "sim-pay")];
        let upload = clerk.upload("/finance/09162000/imports", &fields, ("a.csv", file.as_bytes())).await;
        assert_eq!(upload.status(), 403, "upload with {csrf:?}");
    }
    assert_eq!(clerk.get(PAGE).await.status(), 200, "still signed in");
    assert!(!clerk.get(PAGE).await.text().await?.contains("id=\"imports\""), "nothing imported");
    assert!(!session_token.is_empty());
    app.stop().await
}
backend_test!(every_form_refuses_a_missing_or_wrong_form_token);

pub async fn the_token_form_opens_a_session_for_its_tenant_without_keeping_the_token(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = finance_token(&ctx, "09162000")?;
    let mut clerk = Clerk::new(&app);
    let csrf = clerk.sign_in_form_token().await;
    let refused = clerk.post("/finance/login", &[("csrf", &csrf), ("tenant", "03241001"), ("token", &token)]).await;
    assert_eq!(refused.status(), 401);
    assert!(clerk.session().is_none());
    let signed_in = clerk.post("/finance/login", &[("csrf", &csrf), ("tenant", "09162000"), ("token", &token)]).await;
    assert_eq!(signed_in.status(), 303);
    let session = clerk.session().expect("a session");
    assert_ne!(session, token);
    assert!(!clerk.set_cookies.iter().any(|c| c.contains(&token)), "the token is in no cookie");
    assert_eq!(clerk.get(&location(&signed_in)).await.status(), 200);
    assert_eq!(clerk.get("/finance/03241001/abgleich?from=2026-11-01&to=2026-11-30").await.status(), 403);
    app.stop().await
}
backend_test!(the_token_form_opens_a_session_for_its_tenant_without_keeping_the_token);
