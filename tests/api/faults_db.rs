//! Issue 16: the database goes away under load. pforte runs on PostgreSQL through a TCP proxy the
//! test controls (`tcp_proxy`); 16 concurrent clients keep working while the proxy is cut for a few
//! seconds and then restored. Every answer must be a success or 503 with `Retry-After` (never 401,
//! 403 or 500), every success must be stored, nothing may be half-written, and a retry with the same
//! Idempotency-Key after the database returned resolves an answer that was lost. The time from the
//! restore to the first success is printed.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use sqlx::Row;

use crate::helpers::{eventually, TestApp, TestContext, TestResult};
use crate::keys::any_pool;
use crate::payment_api::{bearer, body};
use crate::payment_surface::{id_of, TENANT};
use crate::tcp_proxy::TcpProxy;

/// How many clients work at once, and how long the database stays away.
pub const CLIENTS: usize = 16;
pub const OUTAGE: Duration = Duration::from_secs(5);

/// One answer as a client saw it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// What the client tried, e.g. a request id; unique per call.
    pub label: String,
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
    pub finished: Instant,
}

impl Answer {
    pub async fn from(label: String, response: reqwest::Result<reqwest::Response>) -> Answer {
        let (status, retry_after, body) = match response {
            Ok(response) => {
                let retry_after =
                    response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                (response.status().as_u16(), retry_after, response.text().await.unwrap_or_default())
            }
            // No answer at all (the connection to pforte broke): recorded as status 0.
            Err(e) => (0, None, e.to_string()),
        };
        Answer { label, status, retry_after, body, finished: Instant::now() }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// pforte on this test's database, reached through a proxy the test cuts; `adjust` sets more.
/// The `CLIENTS` of these tests all come from loopback as fast as they can, hundreds of requests in
/// seconds: the rate limits (SECURITY.md #32, tested in `rate_limits`) are set far above that, so
/// every answer here is about the database.
pub async fn app_behind_proxy(
    ctx: &TestContext,
    adjust: impl FnOnce(figment::Figment) -> figment::Figment,
) -> anyhow::Result<(TcpProxy, TestApp)> {
    let (proxy, proxied) = TcpProxy::in_front_of(&ctx.database_url).await?;
    let unlimited = |f: figment::Figment| {
        ["oauth", "oauth_client", "finance", "callbacks"]
            .iter()
            .fold(f, |f, group| f.merge((format!("rate_limit.{group}.requests"), 1_000_000)))
    };
    let app = ctx
        .spawn_app_with(
            |f| adjust(unlimited(f).merge(("database.url", proxied)).merge(("database.connect_timeout_secs", 1))),
            Arc::new(pforte::clock::SystemClock),
        )
        .await;
    Ok((proxy, app))
}

/// Runs `CLIENTS` clients, each calling `call(client, n)` for n = 0, 1, … while the database is
/// there, then cut for `OUTAGE`, then back until successes came again. Returns every answer and
/// the moment the database was restored.
pub async fn under_an_outage<F, Fut>(proxy: &TcpProxy, call: F) -> anyhow::Result<(Vec<Answer>, Instant)>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Option<Answer>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (stop, call) = (stop.clone(), call.clone());
        clients.spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                match call(client, n).await {
                    Some(answer) => answers.push(answer),
                    // This client has nothing left to do.
                    None => break,
                }
                n += 1;
            }
            answers
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.cut();
    tokio::time::sleep(OUTAGE).await;
    proxy.restore();
    let restored = Instant::now();
    // Let the clients work on until the database served them again, and a little longer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    while let Some(done) = clients.join_next().await {
        answers.extend(done?);
    }
    Ok((answers, restored))
}

/// Every answer is a success or 503 with `Retry-After`; prints the count per status and the time
/// from the restore to the first success after it.
pub fn assert_only_success_or_unavailable(what: &str, answers: &[Answer], restored: Instant) -> TestResult {
    let mut counts: BTreeMap<u16, usize> = BTreeMap::new();
    for answer in answers {
        *counts.entry(answer.status).or_default() += 1;
    }
    let recovery =
        answers.iter().filter(|a| a.is_success() && a.finished >= restored).map(|a| a.finished - restored).min();
    println!("{what}: answers by status {counts:?}; first success {recovery:?} after the database returned");
    let wrong: Vec<&Answer> = answers.iter().filter(|a| !a.is_success() && a.status != 503).collect();
    if let Some(first) = wrong.first() {
        anyhow::bail!(
            "{what}: {} of {} answers were neither a success nor 503 ({counts:?}); the first: {} {}",
            wrong.len(),
            answers.len(),
            first.status,
            first.body
        );
    }
    let bare = answers.iter().filter(|a| a.status == 503 && a.retry_after.is_none()).count();
    anyhow::ensure!(bare == 0, "{what}: {bare} answers were 503 without Retry-After");
    anyhow::ensure!(counts.get(&503).is_some_and(|n| *n > 0), "{what}: the outage was not noticed: {counts:?}");
    anyhow::ensure!(recovery.is_some(), "{what}: no success after the database returned");
    Ok(())
}

async fn create_keyed(app: &TestApp, token: &str, request_id: &str) -> reqwest::Result<reqwest::Response> {
    app.client
        .post(app.url(&format!("/paymenttransaction/demo-service/{TENANT}")))
        .bearer_auth(token)
        .header("Idempotency-Key", format!("key-{request_id}"))
        .json(&body(app, request_id))
        .timeout(Duration::from_secs(40))
        .send()
        .await
}

/// Retries `label` until it succeeds (a request still holding its key is answered 409 meanwhile).
async fn retried(
    label: &str,
    call: impl Fn() -> futures_util::future::BoxFuture<'static, Answer>,
) -> anyhow::Result<Answer> {
    let last = std::sync::Mutex::new(None);
    let outcome = eventually(Duration::from_secs(20), &format!("a retry of {label} succeeds"), || {
        let attempt = call();
        let last = &last;
        async move {
            let answer = attempt.await;
            anyhow::ensure!(
                answer.is_success() || answer.status == 503 || answer.status == 409,
                "retry of {}: {} {}",
                answer.label,
                answer.status,
                answer.body
            );
            if let Ok(mut last) = last.lock() {
                *last = Some((answer.status, answer.body.clone()));
            }
            Ok(answer.is_success().then_some(answer))
        }
    })
    .await;
    outcome.map_err(|e| anyhow::anyhow!("{e}; the last answer: {:?}", last.lock().ok().and_then(|l| l.clone())))
}

pub async fn a_database_cut_during_payment_creates_answers_only_201_or_503_and_loses_nothing(
    ctx: TestContext,
) -> TestResult {
    let (proxy, app) = app_behind_proxy(&ctx, |f| f).await?;
    let app = Arc::new(app);
    let token = bearer(&app).await?;
    let (answers, restored) = under_an_outage(&proxy, {
        let (app, token) = (app.clone(), token.clone());
        move |client, n| {
            let (app, token) = (app.clone(), token.clone());
            async move {
                let request_id = format!("F-{client}-{n}");
                Some(Answer::from(request_id.clone(), create_keyed(&app, &token, &request_id).await).await)
            }
        }
    })
    .await?;
    assert_only_success_or_unavailable("creates", &answers, restored)?;

    // The same request under the same key after the database returned: one payment per request,
    // and a create whose 201 was stored but lost on the wire is answered with its payment now.
    let resolved = futures_util::stream::iter(answers.iter().cloned())
        .map(|answer| {
            let (app, token) = (app.clone(), token.clone());
            async move {
                if answer.is_success() {
                    return Ok(answer);
                }
                retried(&answer.label.clone(), move || {
                    let (app, token, label) = (app.clone(), token.clone(), answer.label.clone());
                    Box::pin(async move { Answer::from(label.clone(), create_keyed(&app, &token, &label).await).await })
                })
                .await
            }
        })
        .buffer_unordered(CLIENTS)
        .collect::<Vec<anyhow::Result<Answer>>>()
        .await;
    let mut created: HashMap<String, String> = HashMap::new();
    for answer in resolved {
        let answer = answer?;
        let transaction: Value = serde_json::from_str(&answer.body)?;
        created.insert(answer.label.clone(), id_of(&transaction));
    }

    let pool = any_pool(&ctx.database_url).await?;
    let rows = sqlx::query("SELECT transaction_id, request_id FROM payments").fetch_all(&pool).await?;
    let mut stored: HashMap<String, Vec<String>> = HashMap::new();
    for row in &rows {
        stored.entry(row.try_get("request_id")?).or_default().push(row.try_get("transaction_id")?);
    }
    for (request_id, id) in &created {
        assert_eq!(stored.get(request_id), Some(&vec![id.clone()]), "{request_id} is stored once, as answered");
    }
    assert_eq!(rows.len(), created.len(), "no payment that no answer names");
    let unanswered: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payments p WHERE NOT EXISTS \
         (SELECT 1 FROM payment_events e WHERE e.transaction_id = p.transaction_id) \
         OR NOT EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.idempotency_key = 'key-' || p.request_id \
                        AND k.response_status = 201)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(unanswered, 0, "every payment has its creation event and its stored answer");
    Ok(())
}
postgres_test!(a_database_cut_during_payment_creates_answers_only_201_or_503_and_loses_nothing);
