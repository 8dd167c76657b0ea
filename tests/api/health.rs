use std::sync::Arc;

use pforte::clock::SystemClock;
use serde_json::Value;

use crate::helpers::{TestContext, TestResult};

pub async fn healthz_answers_alive_with_the_version(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body["status"], "alive");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    app.stop().await
}
backend_test!(healthz_answers_alive_with_the_version);

pub async fn readyz_answers_ready_once_the_database_is_migrated(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body["status"], "ready");
    let backend = match ctx.backend {
        crate::helpers::TestBackend::Sqlite => "sqlite",
        crate::helpers::TestBackend::Postgres(_) => "postgres",
    };
    assert_eq!(body["database"], backend, "the database this test gave it");
    app.stop().await
}
backend_test!(readyz_answers_ready_once_the_database_is_migrated);

/// Nothing listens on port 1: the server must still start, answer liveness, and report not ready.
pub async fn readyz_is_503_while_the_database_is_unreachable() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ctx = TestContext {
        database_url: "postgres://postgres@127.0.0.1:1/pforte".into(),
        dir,
        master_key: pforte::keys::MasterKey::generate().encode(),
        backend: crate::helpers::TestBackend::Sqlite,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let figment = ctx
        .figment()
        .merge(("server.public_url", format!("http://127.0.0.1:{port}")))
        .merge(("database.connect_timeout_secs", 1));
    let settings = pforte::config::Settings::from_figment(figment).map_err(|p| anyhow::anyhow!("{p}"))?;
    let registry =
        pforte::registry::Registry::load(&settings.registry, &settings.server.public_url, settings.dev.simulators)
            .map_err(|p| anyhow::anyhow!("{p}"))?;
    let app = pforte::app::Application::build_on(listener, settings, registry, Arc::new(SystemClock))?;
    let token = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();

    let live = client.get(format!("http://127.0.0.1:{port}/healthz")).send().await?;
    assert_eq!(live.status(), 200);
    let ready = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await?;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.headers()["content-type"], "application/problem+json");
    let body: Value = ready.json().await?;
    assert_eq!(body["code"], "unavailable");

    token.cancel();
    server.await??;
    Ok(())
}
plain_test!(readyz_is_503_while_the_database_is_unreachable);

pub async fn start_page_names_the_service_its_version_and_endpoints(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str()?.starts_with("text/html"));
    let page = response.text().await?;
    assert!(page.contains("pforte"));
    assert!(page.contains(env!("CARGO_PKG_VERSION")));
    for endpoint in ["/healthz", "/readyz", "/.well-known/jwks.json"] {
        assert!(page.contains(endpoint), "start page lacks {endpoint}");
    }
    assert!(!page.contains("http://") && !page.contains("https://"), "the page must load no external assets");
    let css = app.get("/assets/pforte.css").await;
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"].to_str()?.starts_with("text/css"));
    app.stop().await
}
backend_test!(start_page_names_the_service_its_version_and_endpoints);

pub async fn every_response_carries_its_own_request_id(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let first = app.get("/healthz").await;
    let second = app.client.get(app.url("/nope")).header("x-request-id", "injected").send().await?;
    let first_id = first.headers()["x-request-id"].to_str()?.to_owned();
    let second_id = second.headers()["x-request-id"].to_str()?.to_owned();
    assert_eq!(first_id.len(), 36, "a UUID: {first_id}");
    assert_ne!(first_id, second_id);
    assert_ne!(second_id, "injected", "a client-sent id is not trusted");
    app.stop().await
}
backend_test!(every_response_carries_its_own_request_id);

async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> TestResult {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await?;
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code);
    assert_eq!(body["type"], format!("urn:pforte:problem:{code}"));
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()));
    Ok(())
}

pub async fn unknown_route_gets_a_404_with_the_standard_error_body(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    assert_problem(app.get("/no/such/thing").await, 404, "not_found").await?;
    app.stop().await
}
backend_test!(unknown_route_gets_a_404_with_the_standard_error_body);

pub async fn wrong_method_gets_a_405_with_the_standard_error_body(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let response = app.client.delete(app.url("/healthz")).send().await?;
    assert_problem(response, 405, "method_not_allowed").await?;
    app.stop().await
}
backend_test!(wrong_method_gets_a_405_with_the_standard_error_body);

pub async fn oversized_body_gets_a_413_with_the_standard_error_body(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app_with(|f| f.merge(("server.body_limit_bytes", 1024)), Arc::new(SystemClock)).await;
    let response = app.client.post(app.url("/")).body(vec![b'x'; 4096]).send().await?;
    assert_problem(response, 413, "payload_too_large").await?;
    // Below the limit the same request reaches routing (and is refused for its method instead).
    let response = app.client.post(app.url("/")).body(vec![b'x'; 512]).send().await?;
    assert_eq!(response.status(), 405);
    app.stop().await
}
backend_test!(oversized_body_gets_a_413_with_the_standard_error_body);

pub async fn pages_carry_security_headers(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    for path in ["/", "/healthz", "/missing"] {
        let response = app.get(path).await;
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str()?;
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }
    app.stop().await
}
backend_test!(pages_carry_security_headers);

/// Graceful shutdown: a request already inside a handler when the signal comes still gets its full
/// answer. `Expect: 100-continue` makes the server say when the handler starts reading the body, so
/// the test knows the request is in flight without waiting on a timer.
pub async fn in_flight_request_finishes_after_shutdown_begins(ctx: TestContext) -> TestResult {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let app = ctx.spawn_app().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let body = "grant_type=client_credentials";
    let credentials = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "demo:demo-secret-change-me");
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: {address}\r\nAuthorization: Basic {credentials}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    let stream = tokio::net::TcpStream::connect(&address).await?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(head.as_bytes()).await?;
    let mut line = String::new();
    read.read_line(&mut line).await?;
    assert!(line.starts_with("HTTP/1.1 100"), "the handler is reading the body: {line}");
    read.read_line(&mut String::new()).await?;

    app.begin_shutdown();
    write.write_all(body.as_bytes()).await?;
    let mut response = String::new();
    read.read_to_string(&mut response).await?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("access_token"));
    app.stop().await?;
    // Once stopped, nothing listens any more.
    assert!(tokio::net::TcpStream::connect(&address).await.is_err());
    Ok(())
}
backend_test!(in_flight_request_finishes_after_shutdown_begins);
