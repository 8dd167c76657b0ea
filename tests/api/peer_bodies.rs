//! Answers from peers are read with a size cap (issue 14, finding 6; SECURITY.md #31): a payment
//! provider, an account provider's token endpoint and a client's `jwks_uri` that answer more than
//! pforte reads are refused the way an unreachable peer is, in bounded time and memory, whether the
//! size is declared (`Content-Length`) or only found while reading (chunked, or without end).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use josekit::jws::{JwsHeader, ES256};
use josekit::jwt::JwtPayload;
use pforte::clock::{ManualClock, SystemClock};
use serde_json::{json, Value};

use crate::faults_peers::{app_with_account_provider, login_through};
use crate::faults_peers_payments::app_paying_through;
use crate::helpers::{TestContext, TestResult};
use crate::payment_api::{bearer, body, create};
use crate::upstream::mock_op::{MockOp, TokenFault};

/// Over the 1 MiB cap on peer answers.
const PADDING: usize = 2 * 1024 * 1024;
const CHUNK: usize = 16 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Size {
    Normal = 0,
    /// The answer, then whitespace up to 2 MiB, with a `Content-Length`.
    Declared = 1,
    /// The same, chunked: the size shows only while reading.
    Chunked = 2,
    /// The answer, then whitespace without end.
    Endless = 3,
}

/// `json` as the peer sends it in `size`.
fn answer(status: StatusCode, json: &Value, size: Size) -> Response {
    let text = json.to_string();
    let chunks = move |count: Option<usize>| {
        let head = futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(text)) });
        let padding = futures_util::stream::repeat_with(|| Ok(Bytes::from(vec![b' '; CHUNK])));
        match count {
            Some(n) => Body::from_stream(head.chain(padding.take(n))),
            None => Body::from_stream(head.chain(padding)),
        }
    };
    let body = match size {
        Size::Normal => Body::from(json.to_string()),
        Size::Declared => Body::from(format!("{json}{}", " ".repeat(PADDING))),
        Size::Chunked => chunks(Some(PADDING / CHUNK)),
        Size::Endless => chunks(None),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// An XBezahldienste provider answering creates in the size it is set to.
async fn provider(size: Arc<AtomicU8>) -> anyhow::Result<String> {
    async fn create_at(
        State(size): State<Arc<AtomicU8>>,
        Path((o, e)): Path<(String, String)>,
        body: Bytes,
    ) -> Response {
        let request: Value = serde_json::from_slice(&body).unwrap_or_default();
        let reference = format!("big-{}", uuid::Uuid::new_v4().simple());
        let information = json!({
            "transactionUrl": format!("http://127.0.0.1:9/api/paymenttransaction/{o}/{e}/{reference}"),
            "transactionRedirectUrl": format!("http://127.0.0.1:9/page/{reference}"),
            "transactionId": reference,
            "status": "INITIAL",
        });
        let size = match size.load(Ordering::SeqCst) {
            1 => Size::Declared,
            2 => Size::Chunked,
            3 => Size::Endless,
            _ => Size::Normal,
        };
        answer(StatusCode::CREATED, &json!({ "paymentRequest": request, "paymentInformation": information }), size)
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = Router::new().route("/api/paymenttransaction/{o}/{e}", post(create_at)).with_state(size);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(base)
}

async fn provider_answering(ctx: &TestContext, sizes: &[Size]) -> TestResult {
    let size = Arc::new(AtomicU8::new(Size::Normal as u8));
    let base = provider(size.clone()).await?;
    let app = app_paying_through(ctx, &base).await?;
    let token = bearer(&app).await?;
    for (n, &set) in sizes.iter().enumerate() {
        size.store(set as u8, Ordering::SeqCst);
        let started = Instant::now();
        let answer = create(&app, &token, "09162000", &body(&app, &format!("BIG-{n}")), None).await?;
        let status = answer.status().as_u16();
        let problem: Value = answer.json().await?;
        assert_eq!(status, 503, "{set:?}: {problem}");
        assert!(started.elapsed() < Duration::from_secs(5), "{set:?}: refused in bounded time");
        assert!(!app.state.db.payment_exists("demo-service", "09162000", &format!("BIG-{n}")).await?, "{set:?}");
    }
    size.store(Size::Normal as u8, Ordering::SeqCst);
    let created = create(&app, &token, "09162000", &body(&app, "BIG-OK"), None).await?;
    assert_eq!(created.status(), 201, "an answer within the cap is read");
    app.stop().await
}

pub async fn a_provider_answer_over_the_cap_is_refused_as_unavailable(ctx: TestContext) -> TestResult {
    provider_answering(&ctx, &[Size::Declared, Size::Chunked]).await
}
backend_test!(a_provider_answer_over_the_cap_is_refused_as_unavailable);

pub async fn an_endless_provider_answer_is_cut_off_at_the_cap(ctx: TestContext) -> TestResult {
    provider_answering(&ctx, &[Size::Endless]).await
}
backend_test!(an_endless_provider_answer_is_cut_off_at_the_cap);

/// The account provider's token answer over the cap: the person sees the "unreachable" page with
/// the way back to the service (`temporarily_unavailable`), as for a provider that is down.
pub async fn an_account_providers_token_answer_over_the_cap_shows_the_unreachable_page(ctx: TestContext) -> TestResult {
    let op = MockOp::start(ManualClock::at_millis(chrono::Utc::now().timestamp_millis())).await?;
    let app = app_with_account_provider(&ctx, &op).await?;
    op.set(|op| op.behaviour.token = TokenFault::Oversized);
    let page = login_through(&app, &op).await?;
    assert_eq!(page.status(), 502);
    let html = page.text().await?;
    assert!(html.contains("Account service unreachable"), "{html}");
    assert!(html.contains("error=temporarily_unavailable"), "{html}");
    app.stop().await
}
backend_test!(an_account_providers_token_answer_over_the_cap_shows_the_unreachable_page);

/// A client's key set over 64 KiB (declared, chunked or endless) is not read: the client cannot be
/// authenticated (`invalid_client`), within seconds.
pub async fn a_client_jwks_over_the_cap_is_not_read(ctx: TestContext) -> TestResult {
    client_jwks_sized(&ctx, &[Size::Declared, Size::Chunked]).await
}
backend_test!(a_client_jwks_over_the_cap_is_not_read);

pub async fn an_endless_client_jwks_is_cut_off_at_the_cap(ctx: TestContext) -> TestResult {
    client_jwks_sized(&ctx, &[Size::Endless]).await
}
backend_test!(an_endless_client_jwks_is_cut_off_at_the_cap);

async fn client_jwks_sized(ctx: &TestContext, sizes: &[Size]) -> TestResult {
    let pair = ES256.generate_key_pair()?;
    let mut jwk = pair.to_jwk_public_key();
    jwk.set_key_id("big-key");
    let keys = json!({ "keys": [Value::Object(jwk.as_ref().clone())] });
    let size = Arc::new(AtomicU8::new(Size::Normal as u8));
    let served = size.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let jwks_uri = format!("http://127.0.0.1:{}/jwks", listener.local_addr()?.port());
    let router = Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (keys, served) = (keys.clone(), served.clone());
            async move {
                let size = match served.load(Ordering::SeqCst) {
                    1 => Size::Declared,
                    2 => Size::Chunked,
                    3 => Size::Endless,
                    _ => Size::Normal,
                };
                answer(StatusCode::OK, &keys, size)
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let file = format!(
        "display_name = \"Big JWKS client\"\nredirect_uris = [\"{{public_url}}/j/callback\"]\nidentity_providers = [\"bundid-sim\"]\n\
         scopes = [\"openid\"]\ngrant_types = [\"client_credentials\"]\n\n[auth]\nmethod = \"private_key_jwt\"\njwks_uri = \"{jwks_uri}\"\n"
    );
    let clients = ctx.clients_with(&[("big-jwks", file)]);
    let app = ctx.spawn_app_with(|f| f.merge(("registry.clients", clients)), Arc::new(SystemClock)).await;
    let token = |jti: String| {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({ "iss": "big-jwks", "sub": "big-jwks", "aud": app.address, "exp": now + 60, "iat": now, "jti": jti });
        let mut header = JwsHeader::new();
        header.set_key_id("big-key");
        let payload = JwtPayload::from_map(claims.as_object().cloned().unwrap_or_default()).expect("payload");
        let signer = ES256.signer_from_jwk(&pair.to_jwk_private_key()).expect("signer");
        let assertion = josekit::jwt::encode_with_signer(&payload, &header, &signer).expect("assertion");
        let app = &app;
        async move {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion.as_str()),
            ];
            let answer = app.client.post(app.url("/token")).form(&form).send().await.expect("token");
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or_default())
        }
    };
    for (n, &set) in sizes.iter().enumerate() {
        size.store(set as u8, Ordering::SeqCst);
        let started = Instant::now();
        let (status, error) = token(format!("big-{n}")).await;
        assert_eq!((status, error["error"].as_str()), (401, Some("invalid_client")), "{set:?}: {error}");
        assert!(started.elapsed() < Duration::from_secs(5), "{set:?}: refused in bounded time");
    }
    app.stop().await
}
