//! Traces (issue 11): the real `pforte` binary with `traces.otlp_endpoint` pointed at an OTLP/HTTP
//! collector that this test runs on loopback (JSON, `POST /v1/traces`). A payment and a login are
//! followed from the online service's `traceparent` through pforte's request span, the spans of its
//! calls to the payment provider, the account provider and the notification receiver, to the server
//! spans of the simulators that received pforte's `traceparent`; no span carries a query, a code, a
//! secret or a transaction id. The binary keeps the exporter's global state out of the other tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{eventually, free_port, Pforte, TestContext, TestResult, MANIFEST_DIR};
use crate::oidc::{CHALLENGE, DEMO_SECRET, VERIFIER};

const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SERVER: i64 = 2;
const CLIENT: i64 = 3;

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    kind: i64,
    attributes: BTreeMap<String, String>,
}

impl Span {
    fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// An OTLP/HTTP collector: keeps every JSON export it is sent.
struct Collector {
    url: String,
    exports: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    async fn start() -> anyhow::Result<Collector> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let exports = Arc::new(Mutex::new(Vec::new()));
        let kept = exports.clone();
        let handler = move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let export: Value = serde_json::from_slice(&body).unwrap_or_default();
                kept.lock().map(|mut all| all.push(export)).ok();
                axum::Json(json!({}))
            }
        };
        let router = axum::Router::new().route("/v1/traces", axum::routing::post(handler));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Collector { url, exports })
    }

    fn exports(&self) -> Vec<Value> {
        self.exports.lock().map(|all| all.clone()).unwrap_or_default()
    }

    fn spans(&self) -> Vec<Span> {
        let exports = self.exports();
        let resources = exports.iter().flat_map(|e| e["resourceSpans"].as_array().cloned().unwrap_or_default());
        let scopes = resources.flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default());
        let spans = scopes.flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default());
        spans
            .map(|span| Span {
                trace_id: text(&span["traceId"]),
                span_id: text(&span["spanId"]),
                parent: text(&span["parentSpanId"]),
                name: text(&span["name"]),
                kind: span["kind"].as_i64().unwrap_or_default(),
                attributes: attributes(&span["attributes"]),
            })
            .collect()
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// OTLP's `[{key, value: {stringValue | intValue | …}}]` as key → the value's text.
fn attributes(list: &Value) -> BTreeMap<String, String> {
    let pairs = list.as_array().into_iter().flatten();
    pairs
        .map(|pair| {
            let value = pair["value"].as_object().and_then(|v| v.values().next().cloned()).unwrap_or_default();
            (text(&pair["key"]), value.as_str().map_or_else(|| value.to_string(), str::to_owned))
        })
        .collect()
}

/// A notification receiver that keeps each delivery's `traceparent` and answers 200.
async fn receiver() -> anyhow::Result<(String, Arc<Mutex<Vec<Option<String>>>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr()?.port());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let handler = move |headers: axum::http::HeaderMap| {
        let log = log.clone();
        async move {
            let parent = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
            log.lock().map(|mut log| log.push(parent)).ok();
            axum::http::StatusCode::OK
        }
    };
    let router = axum::Router::new().route("/hook", axum::routing::post(handler));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((url, seen))
}

/// pforte exporting to `collector`, in batches every 100 ms so the test need not wait 5 s.
fn traced(collector: &Collector) -> [(&'static str, String); 2] {
    [("PFORTE__TRACES__OTLP_ENDPOINT", collector.url.clone()), ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned())]
}

fn hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn browser() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// No attribute of any span holds a query, or any of `secrets`.
fn assert_clean(spans: &[Span], secrets: &[&str]) {
    for span in spans {
        for (key, value) in &span.attributes {
            assert!(!value.contains('?'), "{} carries a query in {key}: {value}", span.name);
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                assert!(!value.contains(secret), "{} carries {secret:?} in {key}", span.name);
            }
        }
    }
}

pub async fn a_payment_is_one_trace_from_the_service_through_the_provider_to_the_receiver(
    ctx: TestContext,
) -> TestResult {
    let collector = Collector::start().await?;
    let (hook, deliveries) = receiver().await?;
    let clients = ctx.clients_notifying("clients", &hook, HOOK_SECRET)?;
    let pforte = Pforte::start(&ctx, free_port()?, &clients, "traces", &traced(&collector)).await?;
    let base = pforte.base.clone();
    let http = browser()?;

    let (trace_id, caller) = (hex(16), hex(8));
    let body = json!({
        "requestId": "trace-1", "requestTimestamp": "2026-11-29T10:00:00+01:00", "currency": "EUR",
        "grosAmount": 12.50, "purpose": "Gebuehr trace-1", "redirectUrl": format!("{base}/demo/bezahlt"),
        "items": [{ "totalNetAmount": 12.50 }]
    });
    let created = http
        .post(format!("{base}/paymenttransaction/demo-service/09162000"))
        .basic_auth("demo", Some(DEMO_SECRET))
        .header("content-type", "application/json")
        .header("Idempotency-Key", "trace-key-1")
        .header("traceparent", format!("00-{trace_id}-{caller}-01"))
        .body(body.to_string())
        .send()
        .await?;
    assert_eq!(created.status(), 201);
    let answer: Value = created.json().await?;
    let transaction = text(&answer["paymentInformation"]["transactionId"]);
    assert!(!transaction.is_empty(), "{answer}");

    // The citizen pays at the simulator; pforte reads the status and notifies the service.
    let to_provider = http.get(format!("{base}/pay/{transaction}")).send().await?;
    assert_eq!(to_provider.status(), 303);
    let chosen = http.post(location(&to_provider)).form(&[("action", "pay"), ("method", "CREDITCARD")]).send().await?;
    assert_eq!(chosen.status(), 303);
    let back = http.get(location(&chosen)).send().await?;
    assert_eq!(back.status(), 303, "return page");

    let create_route = "POST /paymenttransaction/{originator}/{endpoint}";
    let (spans, server, create) = eventually(Duration::from_secs(20), "the payment's spans", || {
        let spans = collector.spans();
        let server = spans.iter().find(|s| s.trace_id == trace_id && s.parent == caller).cloned();
        let create = server.as_ref().and_then(|server| {
            spans.iter().find(|s| s.name == "provider.create" && s.parent == server.span_id).cloned()
        });
        let reached = create.as_ref().is_some_and(|c| spans.iter().any(|s| s.parent == c.span_id && s.kind == SERVER));
        async move { Ok(server.zip(create).filter(|_| reached).map(|(server, create)| (spans, server, create))) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; spans: {:#?}; log:\n{}", collector.spans(), pforte.log_text()))?;

    assert_eq!(server.name, create_route, "named after the route template");
    assert_eq!(server.kind, SERVER);
    assert_eq!(server.attribute("path"), "/paymenttransaction/{originator}/{endpoint}");
    assert_eq!(server.attribute("method"), "POST");
    assert_eq!(server.attribute("http.response.status_code"), "201");
    assert_eq!(create.trace_id, trace_id, "the provider call is in the service's trace");
    assert_eq!(create.kind, CLIENT);
    assert!(create.attribute("peer").starts_with("sim-pay"), "{create:?}");
    assert_eq!(create.attribute("http.response.status_code"), "201", "{create:?}");
    // The simulator's own request span hangs below provider.create: it received that span as traceparent.
    let at_provider = spans.iter().find(|s| s.parent == create.span_id && s.kind == SERVER);
    assert!(at_provider.is_some_and(|s| s.trace_id == trace_id), "{spans:#?}");

    // The notification carries the trace context of its own delivery span.
    let (spans, header) = eventually(Duration::from_secs(20), "a notification with traceparent", || {
        let header = deliveries.lock().ok().and_then(|d| d.iter().flatten().next().cloned());
        let spans = collector.spans();
        let found = header.filter(|h| {
            let parts: Vec<&str> = h.split('-').collect();
            spans.iter().any(|s| s.name == "notification.deliver" && parts.get(2) == Some(&s.span_id.as_str()))
        });
        async move { Ok(found.map(|header| (spans, header))) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; received: {:?}; spans: {:#?}", deliveries.lock().ok(), collector.spans()))?;
    let parts: Vec<&str> = header.split('-').collect();
    let deliver = spans.iter().find(|s| s.span_id == parts[2]).cloned().unwrap_or_else(|| unreachable!());
    assert_eq!(parts[1], deliver.trace_id, "{header}");
    assert_eq!(deliver.kind, CLIENT);
    assert_eq!(deliver.attribute("peer"), "demo");
    assert_eq!(deliver.attribute("http.response.status_code"), "200");

    assert_clean(&spans, &[DEMO_SECRET, HOOK_SECRET, &transaction]);
    let resource = &collector.exports()[0]["resourceSpans"][0]["resource"];
    assert_eq!(attributes(&resource["attributes"]).get("service.name").map(String::as_str), Some("pforte"));
    pforte.stop()?;
    Ok(())
}
backend_test!(a_payment_is_one_trace_from_the_service_through_the_provider_to_the_receiver);

/// The login's back channel: the callback's request span holds `upstream.token` and
/// `upstream.userinfo`, the simulator's endpoints received them as parents, and neither the
/// provider's code, pforte's code, the PKCE verifier nor the client secret appears in any span.
/// The log level is `warn`: it keeps request lines out of the log, not spans out of the trace.
pub async fn a_login_traces_the_upstream_calls_without_codes_or_secrets(ctx: TestContext) -> TestResult {
    let collector = Collector::start().await?;
    let clients = format!("{MANIFEST_DIR}/config/clients");
    // The log level filters log lines, not spans.
    let [endpoint, delay] = traced(&collector);
    let env = [endpoint, delay, ("PFORTE__LOG__LEVEL", "warn".to_owned())];
    let pforte = Pforte::start(&ctx, free_port()?, &clients, "traces", &env).await?;
    let base = pforte.base.clone();
    let http = browser()?;

    let params = [
        ("client_id", "demo".to_owned()),
        ("redirect_uri", format!("{base}/demo/callback")),
        ("response_type", "code".to_owned()),
        ("scope", "openid profile email".to_owned()),
        ("state", "client-state-1".to_owned()),
        ("nonce", "client-nonce-1".to_owned()),
        ("code_challenge", CHALLENGE.to_owned()),
        ("code_challenge_method", "S256".to_owned()),
        ("acr_values", "http://eidas.europa.eu/LoA/substantial".to_owned()),
    ];
    let first = http.get(format!("{base}/authorize")).query(&params).send().await?;
    let cookie = first
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .find(|pair| pair.starts_with("__Host-pforte-browser="))
        .unwrap_or_default();
    let upstream = if first.status() == 200 {
        let html = first.text().await?;
        let action = html.split("action=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default();
        let action = action.replace("&amp;", "&");
        http.post(format!("{base}{action}"))
            .header("cookie", &cookie)
            .form(&[("provider", "bundid-sim")])
            .send()
            .await?
    } else {
        first
    };
    assert_eq!(upstream.status(), 303, "to the provider");
    let at_provider = location(&upstream);
    let page = http.get(&at_provider).send().await?.text().await?;
    let marker = "name=\"request\" value=\"";
    let request = page.split(marker).nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_owned();
    let decide = at_provider.split("/authorize").next().unwrap_or_default().to_owned() + "/authorize/decide";
    let form =
        [("request", request.as_str()), ("persona", "erika"), ("level", "STORK-QAA-Level-3"), ("action", "login")];
    let back = http.post(&decide).form(&form).send().await?;
    assert_eq!(back.status(), 303, "back to pforte");
    let callback = location(&back);
    let upstream_code = url::Url::parse(&callback)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    assert!(!upstream_code.is_empty(), "{callback}");
    let answered = http.get(&callback).header("cookie", &cookie).send().await?;
    assert_eq!(answered.status(), 303, "{}", pforte.log_text());
    let code = url::Url::parse(&location(&answered))?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    assert!(!code.is_empty(), "{}", location(&answered));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", &format!("{base}/demo/callback")),
        ("code_verifier", VERIFIER),
    ];
    let tokens = http.post(format!("{base}/token")).basic_auth("demo", Some(DEMO_SECRET)).form(&form).send().await?;
    assert_eq!(tokens.status(), 200);
    let tokens: Value = tokens.json().await?;

    let spans = eventually(Duration::from_secs(20), "the login's spans", || {
        let spans = collector.spans();
        let callback = spans.iter().find(|s| s.name == "GET /callback/{provider_id}").cloned();
        let below = |name: &str| {
            callback.as_ref().and_then(|c| spans.iter().find(|s| s.name == name && s.parent == c.span_id)).cloned()
        };
        let done = below("upstream.token").zip(below("upstream.userinfo")).is_some_and(|(token, userinfo)| {
            [token, userinfo].iter().all(|call| spans.iter().any(|s| s.parent == call.span_id && s.kind == SERVER))
        }) && spans.iter().any(|s| s.name == "POST /token");
        async move { Ok(done.then_some(spans)) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; spans: {:#?}; log:\n{}", collector.spans(), pforte.log_text()))?;

    let callback =
        spans.iter().find(|s| s.name == "GET /callback/{provider_id}").cloned().unwrap_or_else(|| unreachable!());
    assert_eq!(callback.attribute("path"), "/callback/{provider_id}");
    assert_eq!(callback.attribute("http.response.status_code"), "303");
    for name in ["upstream.token", "upstream.userinfo"] {
        let call = spans.iter().find(|s| s.name == name && s.parent == callback.span_id);
        let call = call.unwrap_or_else(|| unreachable!());
        assert_eq!(call.trace_id, callback.trace_id, "{name}");
        assert_eq!(call.attribute("peer"), "bundid-sim", "{name}");
        assert_eq!(call.attribute("http.response.status_code"), "200", "{name}");
    }
    let access_token = text(&tokens["access_token"]);
    assert_clean(&spans, &[DEMO_SECRET, &upstream_code, &code, VERIFIER, &access_token, &request]);
    pforte.stop()?;
    Ok(())
}
backend_test!(a_login_traces_the_upstream_calls_without_codes_or_secrets);

/// A graceful stop sends the spans still waiting for their batch: with a batch delay of a minute,
/// the request's span reaches the collector only through the flush at SIGTERM.
pub async fn a_graceful_stop_sends_the_spans_still_buffered(ctx: TestContext) -> TestResult {
    let collector = Collector::start().await?;
    let clients = format!("{MANIFEST_DIR}/config/clients");
    let env =
        [("PFORTE__TRACES__OTLP_ENDPOINT", collector.url.clone()), ("OTEL_BSP_SCHEDULE_DELAY", "60000".to_owned())];
    let pforte = Pforte::start(&ctx, free_port()?, &clients, "traces", &env).await?;
    let (trace_id, caller) = (hex(16), hex(8));
    let answer = reqwest::Client::new()
        .get(format!("{}/.well-known/openid-configuration", pforte.base))
        .header("traceparent", format!("00-{trace_id}-{caller}-01"))
        .send()
        .await?;
    assert_eq!(answer.status(), 200);
    let ours = |spans: &[Span]| spans.iter().any(|s| s.trace_id == trace_id && s.parent == caller);
    assert!(!ours(&collector.spans()), "exported before the batch delay: the flush would go untested");
    pforte.stop()?;
    let spans = collector.spans();
    assert!(ours(&spans), "{spans:#?}");
    Ok(())
}
backend_test!(a_graceful_stop_sends_the_spans_still_buffered);
