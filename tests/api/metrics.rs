//! `/metrics` on the operator's address, through the real binary: after a login and a payment the
//! series say what happened, with the values it happened with, and carry no transaction id; the
//! public address does not serve them.
//!
//! The `pforte` binary runs as its own process, so its recorder holds only what this test did.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{eventually, free_port, Pforte, TestContext, TestResult, MANIFEST_DIR};
use crate::login::{location, Browser};
use crate::oidc::{with, CHALLENGE, DEMO_SECRET, VERIFIER};

/// One sample of the text format: its labels (sorted) and value.
type Samples = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

/// Reads the Prometheus text format into samples by metric name.
fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').expect("a sample is `series value`");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').expect("label=value");
                (key.to_owned(), value.trim_matches('"').to_owned())
            })
            .collect();
        samples.entry(name.to_owned()).or_default().push((labels, value.parse().expect("a number")));
    }
    samples
}

/// The value of the one series of `name` whose labels include `labels`; `None` when there is none.
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .get(name)?
        .iter()
        .filter(|(have, _)| labels.iter().all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, value)| *value)
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?} matches {} series", matching.len());
    matching.first().copied()
}

async fn scrape(admin: &str) -> anyhow::Result<(String, Samples)> {
    let response = reqwest::get(format!("{admin}/metrics")).await?;
    anyhow::ensure!(response.status() == 200, "/metrics: {}", response.status());
    let content_type = response.headers()["content-type"].to_str()?.to_owned();
    anyhow::ensure!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await?;
    let samples = parse(&text);
    Ok((text, samples))
}

/// A citizen logs in at the demo client through the account simulator; the demo client redeems the code.
async fn log_in(base: &str) -> TestResult {
    let params: Vec<(String, String)> = [
        ("client_id", "demo".to_owned()),
        ("redirect_uri", format!("{base}/demo/callback")),
        ("response_type", "code".to_owned()),
        ("scope", "openid profile".to_owned()),
        ("state", "metrics-state".to_owned()),
        ("nonce", "metrics-nonce".to_owned()),
        ("code_challenge", CHALLENGE.to_owned()),
        ("code_challenge_method", "S256".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let params = with(params, "acr_values", Some("http://eidas.europa.eu/LoA/substantial"));
    let mut browser = Browser::at(base);
    let answer = browser.login(&params, "bundid-sim", "erika", "STORK-QAA-Level-3").await;
    let back = location(&answer);
    let code = url::Url::parse(&back)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| anyhow::anyhow!("no code in {back}"))?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", &format!("{base}/demo/callback")),
        ("code_verifier", VERIFIER),
    ];
    let response = reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth("demo", Some(DEMO_SECRET))
        .form(&form)
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "token: {}", response.status());
    Ok(())
}

/// Creates a payment for Munich (provider `sim-pay`) and pays it at the simulator's pay page;
/// returns its transaction id.
async fn pay(base: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let body = json!({
        "requestId": "metrics-1", "requestTimestamp": "2026-11-29T10:00:00+01:00", "currency": "EUR",
        "grosAmount": 12.50, "purpose": "Gebuehr metrics-1", "redirectUrl": format!("{base}/demo/bezahlt"),
        "items": [{ "totalNetAmount": 12.50 }]
    });
    let created = http
        .post(format!("{base}/paymenttransaction/demo-service/09162000"))
        .basic_auth("demo", Some(DEMO_SECRET))
        .header("Idempotency-Key", "metrics-key-1")
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(created.status() == 201, "create: {}", created.status());
    let answer: Value = created.json().await?;
    let id = answer["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned();
    let to_provider = http.get(format!("{base}/pay/{id}")).send().await?;
    anyhow::ensure!(to_provider.status() == 303, "/pay: {}", to_provider.status());
    let chosen = http.post(location(&to_provider)).form(&[("action", "pay"), ("method", "CREDITCARD")]).send().await?;
    anyhow::ensure!(chosen.status() == 303, "pay page: {}", chosen.status());
    let back = http.get(location(&chosen)).send().await?;
    anyhow::ensure!(back.status() == 303, "return page: {}", back.status());
    Ok(id)
}

pub async fn metrics_after_a_login_and_a_payment_count_them_by_route_provider_and_outcome(
    ctx: TestContext,
) -> TestResult {
    let admin_port = free_port()?;
    let admin = format!("http://127.0.0.1:{admin_port}");
    let env = [("PFORTE__SERVER__METRICS_LISTEN", format!("127.0.0.1:{admin_port}"))];
    let clients = format!("{MANIFEST_DIR}/config/clients");
    let pforte = Pforte::start(&ctx, free_port()?, &clients, "metrics", &env).await?;
    let base = pforte.base.clone();

    let (_, before) = scrape(&admin).await?;
    assert_eq!(value(&before, "pforte_database_up", &[]), Some(1.0));
    assert_eq!(value(&before, "pforte_payments_open", &[]), Some(0.0));
    let build = &before["pforte_build_info"][0].0;
    assert_eq!(build["version"], env!("CARGO_PKG_VERSION"));
    assert!(!build["revision"].is_empty(), "{build:?}");
    assert_eq!(value(&before, "pforte_payments_created_total", &[]), None, "nothing created yet");

    log_in(&base).await?;
    let id = pay(&base).await?;
    let missing = reqwest::get(format!("{base}/no/such/{id}")).await?;
    assert_eq!(missing.status(), 404);
    // Metrics are the operator's: the public address has none.
    assert_eq!(reqwest::get(format!("{base}/metrics")).await?.status(), 404);

    // The demo service is notified of the payment by the worker; wait for its delivery.
    let (text, after) = eventually(Duration::from_secs(30), "the notification delivered", || {
        let admin = admin.clone();
        async move {
            let (text, samples) = scrape(&admin).await?;
            let delivered = value(&samples, "pforte_notification_attempts_total", &[("outcome", "delivered")]);
            Ok((delivered == Some(1.0)).then_some((text, samples)))
        }
    })
    .await?;

    let login = [("provider", "bundid-sim"), ("level", "substantial")];
    assert_eq!(value(&after, "pforte_logins_started_total", &login), Some(1.0));
    let finished = [login[0], login[1], ("outcome", "finished")];
    assert_eq!(value(&after, "pforte_logins_ended_total", &finished), Some(1.0));
    let upstream = |step| [("provider", "bundid-sim"), ("step", step)];
    for step in ["discovery", "jwks", "token"] {
        let count = value(&after, "pforte_upstream_request_duration_seconds_count", &upstream(step));
        assert_eq!(count, Some(1.0), "{step}: one call, discovery cached for the rest");
    }
    // Error series exist from the first call on, at 0 until something fails.
    assert_eq!(value(&after, "pforte_upstream_errors_total", &upstream("token")), Some(0.0));
    let issued = [("grant", "authorization_code"), ("client", "demo")];
    assert_eq!(value(&after, "pforte_tokens_issued_total", &issued), Some(1.0));

    assert_eq!(value(&after, "pforte_payments_created_total", &[("provider", "sim-pay")]), Some(1.0));
    let paid = [("provider", "sim-pay"), ("status", "PAYED")];
    assert_eq!(value(&after, "pforte_payment_status_changes_total", &paid), Some(1.0));
    let create = [("provider", "sim-pay"), ("operation", "create")];
    assert_eq!(value(&after, "pforte_provider_request_duration_seconds_count", &create), Some(1.0));
    assert!(value(&after, "pforte_provider_request_duration_seconds_sum", &create).is_some_and(|s| s > 0.0));
    let status_reads = [("provider", "sim-pay"), ("operation", "status")];
    assert!(value(&after, "pforte_provider_request_duration_seconds_count", &status_reads).is_some_and(|n| n >= 1.0));
    let abandoned = [create[0], create[1], ("kind", "abandoned")];
    assert_eq!(value(&after, "pforte_provider_errors_total", &abandoned), Some(0.0));
    let unavailable = [create[0], create[1], ("kind", "unavailable")];
    assert_eq!(value(&after, "pforte_provider_errors_total", &unavailable), None);
    assert_eq!(value(&after, "pforte_payments_open", &[]), Some(0.0), "paid, so no longer open");
    assert_eq!(value(&after, "pforte_notification_outbox_depth", &[]), Some(0.0));

    let created = [("route", "/paymenttransaction/{originator}/{endpoint}"), ("method", "POST"), ("status", "2xx")];
    assert_eq!(value(&after, "pforte_http_requests_total", &created), Some(1.0));
    assert_eq!(value(&after, "pforte_http_request_duration_seconds_count", &created), Some(1.0));
    let token = [("route", "/token"), ("method", "POST"), ("status", "2xx")];
    assert_eq!(value(&after, "pforte_http_requests_total", &token), Some(1.0));
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "4xx")];
    assert!(value(&after, "pforte_http_requests_total", &unmatched).is_some_and(|n| n >= 2.0), "{text}");

    assert!(value(&after, "pforte_audit_events_chained_total", &[]).is_some_and(|n| n >= 1.0), "{text}");
    assert!(value(&after, "pforte_database_write_transactions_total", &[]).is_some_and(|n| n >= 3.0));
    assert!(value(&after, "pforte_database_connections_max", &[("pool", "main")]).is_some_and(|n| n >= 1.0));
    assert!(text.contains("# TYPE pforte_http_request_duration_seconds histogram"), "{text}");
    assert!(!text.contains(&id), "no transaction id in a label");
    pforte.stop()
}
backend_test!(metrics_after_a_login_and_a_payment_count_them_by_route_provider_and_outcome);

pub async fn a_scrape_while_the_database_is_away_answers_with_database_up_0(ctx: TestContext) -> TestResult {
    let (proxy, proxied) = crate::tcp_proxy::TcpProxy::in_front_of(&ctx.database_url).await?;
    let admin_port = free_port()?;
    let admin = format!("http://127.0.0.1:{admin_port}");
    let env = [
        ("PFORTE__DATABASE__URL", proxied),
        ("PFORTE__DATABASE__CONNECT_TIMEOUT_SECS", "1".to_owned()),
        ("PFORTE__SERVER__METRICS_LISTEN", format!("127.0.0.1:{admin_port}")),
    ];
    let clients = format!("{MANIFEST_DIR}/config/clients");
    let pforte = Pforte::start(&ctx, free_port()?, &clients, "metrics-outage", &env).await?;
    let (_, up) = scrape(&admin).await?;
    assert_eq!(value(&up, "pforte_database_up", &[]), Some(1.0));
    assert_eq!(value(&up, "pforte_notification_outbox_depth", &[]), Some(0.0));

    proxy.cut();
    let started = std::time::Instant::now();
    let (text, away) = scrape(&admin).await?;
    assert!(started.elapsed() < Duration::from_secs(5), "the scrape waits at most its timeout");
    assert_eq!(value(&away, "pforte_database_up", &[]), Some(0.0), "{text}");
    for gone in ["pforte_notification_outbox_depth", "pforte_payments_open", "pforte_audit_pending_events"] {
        assert!(!away.contains_key(gone), "{gone} is left out, not stale: {text}");
    }
    let readyz = [("route", "/readyz"), ("method", "GET"), ("status", "2xx")];
    assert_eq!(value(&away, "pforte_http_requests_total", &readyz), Some(1.0), "the recorder's series stay");
    assert!(away.contains_key("pforte_build_info"));

    proxy.restore();
    eventually(Duration::from_secs(15), "the database's figures back", || {
        let admin = admin.clone();
        async move {
            let (_, samples) = scrape(&admin).await?;
            Ok((value(&samples, "pforte_database_up", &[]) == Some(1.0)).then_some(()))
        }
    })
    .await?;
    pforte.stop()
}
postgres_test!(a_scrape_while_the_database_is_away_answers_with_database_up_0);
