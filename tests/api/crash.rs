//! `kill -9` at any moment loses no payment, no state change and no notification (SECURITY.md #23).
//! The real `pforte` binary runs against the test's database while online services create payments
//! and citizens pay, cancel or fail them; it is killed with SIGKILL at a moment drawn from a seeded
//! random generator (printed; `PFORTE_CRASH_SEED=<n>` replays the choices), restarted on the same
//! database, and in the end everything the clients were told must be in the database and every
//! status change must have reached the online service.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{
    eventually, free_port, output_text, pforte_command, NotificationReceiver, Pforte, TestContext, TestResult,
};
use crate::keys::any_pool;
use crate::oidc::DEMO_SECRET;

const ROUNDS: usize = 6;
const CITIZENS: usize = 8;
const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Short, so that a create cut off by the kill frees its Idempotency-Key soon (it is in progress
/// for at most this long).
const REQUEST_TIMEOUT_SECS: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Pay,
    Cancel,
    Fail,
}

impl Act {
    fn form(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Act::Pay => vec![("action", "pay"), ("method", "CREDITCARD")],
            Act::Cancel => vec![("action", "cancel")],
            Act::Fail => vec![("action", "fail")],
        }
    }

    fn status(self) -> &'static str {
        match self {
            Act::Pay => "PAYED",
            Act::Cancel => "CANCELED",
            Act::Fail => "FAILED",
        }
    }
}

/// What the online service and the citizen were told about one payment.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    body: String,
    /// The transactionId of a 201; `None` while the answer is lost (to be retried with the same key).
    created: Option<String>,
    /// What the citizen chose on the pay page, once the simulator took it, and whether pforte's return
    /// page then answered (pforte has read and recorded the status).
    act: Option<(Act, bool)>,
    /// The last answer to a create that did not count: it was retried (and the failure message says why).
    last: Option<String>,
}

type Ledger = Arc<Mutex<BTreeMap<String, Entry>>>;

fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Creates one payment (or retries one whose answer was lost). `Ok(false)`: pforte is gone.
async fn create(http: &reqwest::Client, base: &str, ledger: &Ledger, request_id: &str) -> anyhow::Result<bool> {
    let entry = ledger.lock().map_err(|_| anyhow::anyhow!("ledger"))?[request_id].clone();
    let sent = http
        .post(format!("{base}/paymenttransaction/demo-service/09162000"))
        .basic_auth("demo", Some(DEMO_SECRET))
        .header("content-type", "application/json")
        .header("Idempotency-Key", &entry.key)
        .body(entry.body.clone())
        .send()
        .await;
    let note = |last: &str| {
        if let Some(entry) = ledger.lock().ok().as_mut().and_then(|l| l.get_mut(request_id)) {
            entry.last = Some(last.to_owned());
        }
    };
    let Ok(response) = sent else {
        note("no answer");
        return Ok(false);
    };
    let status = response.status().as_u16();
    let Ok(answer) = response.json::<Value>().await else {
        note("answer cut off");
        return Ok(false);
    };
    match status {
        201 => {
            let id = answer["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned();
            anyhow::ensure!(!id.is_empty(), "201 without transactionId: {answer}");
            if let Some(entry) = ledger.lock().map_err(|_| anyhow::anyhow!("ledger"))?.get_mut(request_id) {
                entry.created = Some(id);
            }
        }
        // Still in progress (a cut-off request holds the key for up to the request timeout), or an
        // answer the client cannot trust (timeout, 5xx): the answer counts as lost, try again later.
        409 if answer["functionalCode"] == "PAYMENT_EXISTS" => {
            anyhow::bail!("retrying {request_id} with its Idempotency-Key answered PAYMENT_EXISTS, not the payment")
        }
        409 | 500..=599 => note(&format!("{status} {}", answer["detail"])),
        _ => anyhow::bail!("create {request_id}: unexpected {status}: {answer}"),
    }
    Ok(true)
}

/// The citizen on the pay page: pforte → simulator → choice → back through pforte. `Ok(false)`: pforte is gone.
async fn pay_page(
    http: &reqwest::Client,
    ledger: &Ledger,
    request_id: &str,
    base: &str,
    act: Act,
) -> anyhow::Result<bool> {
    let Some(id) = ledger.lock().map_err(|_| anyhow::anyhow!("ledger"))?[request_id].created.clone() else {
        return Ok(true);
    };
    let Ok(to_provider) = http.get(format!("{base}/pay/{id}")).send().await else { return Ok(false) };
    anyhow::ensure!(to_provider.status() == 303, "/pay/{id}: {}", to_provider.status());
    let Ok(chosen) = http.post(location(&to_provider)).form(&act.form()).send().await else { return Ok(false) };
    anyhow::ensure!(chosen.status() == 303, "pay page: {}", chosen.status());
    let set = |confirmed: bool| {
        if let Some(entry) = ledger.lock().ok().as_mut().and_then(|l| l.get_mut(request_id)) {
            entry.act = Some((act, confirmed));
        }
    };
    set(false);
    let Ok(back) = http.get(location(&chosen)).send().await else { return Ok(false) };
    anyhow::ensure!(back.status() == 303, "return page: {}", back.status());
    set(true);
    Ok(true)
}

/// One online service with its citizens, busy until pforte disappears.
async fn citizen(
    base: String,
    ledger: Ledger,
    mut rng: StdRng,
    progress: Arc<AtomicUsize>,
    name: String,
) -> TestResult {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    for n in 0.. {
        let request_id = format!("{name}-{n}");
        let body = json!({
            "requestId": request_id, "requestTimestamp": "2026-11-29T10:00:00+01:00", "currency": "EUR",
            "grosAmount": 12.50, "purpose": format!("Gebuehr {request_id}"),
            "redirectUrl": format!("{base}/demo/bezahlt"),
            "items": [{ "totalNetAmount": 12.50 }]
        });
        let entry =
            Entry { key: format!("key-{request_id}"), body: body.to_string(), created: None, act: None, last: None };
        ledger.lock().map_err(|_| anyhow::anyhow!("ledger"))?.insert(request_id.clone(), entry);
        if !create(&http, &base, &ledger, &request_id).await? {
            return Ok(());
        }
        progress.fetch_add(1, Ordering::SeqCst);
        if rng.gen_bool(0.6) {
            let act = [Act::Pay, Act::Cancel, Act::Fail][rng.gen_range(0..3)];
            if !pay_page(&http, &ledger, &request_id, &base, act).await? {
                return Ok(());
            }
            progress.fetch_add(1, Ordering::SeqCst);
        }
    }
    Ok(())
}

/// The creates whose answer was lost so far.
fn lost(ledger: &Ledger) -> Vec<String> {
    let ledger = ledger.lock().map(|l| l.clone()).unwrap_or_default();
    ledger.into_iter().filter(|(_, e)| e.created.is_none()).map(|(request_id, _)| request_id).collect()
}

/// Retries the creates in `lost`, each with its key and body, until each has its 201.
async fn retry_lost(base: String, ledger: Ledger, lost: Vec<String>, until: Duration) -> TestResult {
    let http = reqwest::Client::new();
    let answered = eventually(until, "lost creates answered", || {
        let (http, base, ledger, lost) = (http.clone(), base.clone(), ledger.clone(), lost.clone());
        async move {
            let answered = |id: &str| ledger.lock().map(|l| l[id].created.is_some()).unwrap_or(false);
            for request_id in lost.iter().filter(|id| !answered(id)) {
                if !create(&http, &base, &ledger, request_id).await? {
                    // Killed meanwhile: the next round tries again.
                    return Ok(Some(()));
                }
            }
            Ok(lost.iter().all(|id| answered(id)).then_some(()))
        }
    })
    .await;
    answered.map_err(|e| {
        let ledger = ledger.lock().map(|l| l.clone()).unwrap_or_default();
        let open: Vec<_> = ledger.iter().filter(|(_, e)| e.created.is_none()).map(|(id, e)| (id, &e.last)).collect();
        anyhow::anyhow!("{e}: {open:?}")
    })
}

pub async fn kill_9_at_random_moments_loses_no_payment_state_change_or_notification(ctx: TestContext) -> TestResult {
    let seed = match std::env::var("PFORTE_CRASH_SEED") {
        Ok(seed) => seed.parse()?,
        Err(_) => rand::random::<u64>(),
    };
    println!("crash test seed {seed} (replay with PFORTE_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let receiver = NotificationReceiver::start(&[HOOK_SECRET]).await?;
    let clients = ctx.clients_notifying("clients", &receiver.url, HOOK_SECRET)?;
    let port = free_port()?;
    let ledger: Ledger = Arc::default();
    let mut pool = None;
    let env = [("PFORTE__SERVER__REQUEST_TIMEOUT_SECS", REQUEST_TIMEOUT_SECS.to_string())];

    for round in 0..ROUNDS {
        let pforte = Pforte::start(&ctx, port, &clients, &format!("round-{round}"), &env).await?;
        if pool.is_none() {
            // After the first start: pforte creates the SQLite file.
            pool = Some(any_pool(&ctx.database_url).await?);
        }
        let pool = pool.as_ref().ok_or_else(|| anyhow::anyhow!("pool"))?;
        let progress = Arc::new(AtomicUsize::new(0));
        let mut busy = tokio::task::JoinSet::new();
        // Creates whose answer the last kill swallowed are retried while the new work runs.
        busy.spawn(retry_lost(pforte.base.clone(), ledger.clone(), lost(&ledger), Duration::from_secs(60)));
        for n in 0..CITIZENS {
            let citizen_rng = StdRng::seed_from_u64(rng.gen());
            let name = format!("R{round}C{n}");
            busy.spawn(citizen(pforte.base.clone(), ledger.clone(), citizen_rng, progress.clone(), name));
        }
        let kill_after = rng.gen_range(4..60);
        let working = eventually(Duration::from_secs(30), "work in progress", || {
            let failed = match busy.try_join_next() {
                Some(Ok(Err(e))) => Some(e),
                Some(Err(e)) => Some(e.into()),
                _ => None,
            };
            let done = progress.load(Ordering::SeqCst);
            async move { failed.map_or(Ok((done >= kill_after).then_some(())), Err) }
        })
        .await;
        if let Err(e) = working {
            anyhow::bail!("{e:#}; log:\n{}", pforte.log_text());
        }
        pforte.kill_9()?;
        while let Some(result) = busy.join_next().await {
            result??;
        }
        // The dead process's notification leases would let go after 60 s; end them now instead of
        // waiting (`a_dead_workers_lease_lets_its_messages_go` shows that they do).
        sqlx::query("UPDATE notification_outbox SET locked_until = 1 WHERE delivered_at IS NULL AND locked_until > 1")
            .execute(pool)
            .await?;
    }
    let pool = pool.ok_or_else(|| anyhow::anyhow!("pool"))?;

    let pforte = Pforte::start(&ctx, port, &clients, "final", &env).await?;
    retry_lost(pforte.base.clone(), ledger.clone(), lost(&ledger), Duration::from_secs(4 * REQUEST_TIMEOUT_SECS))
        .await?;
    let delivered = eventually(Duration::from_secs(30), "every notification delivered", || {
        let (pool, receiver) = (pool.clone(), receiver.clone());
        async move {
            let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notification_outbox WHERE delivered_at IS NULL")
                .fetch_one(&pool)
                .await?;
            Ok((open == 0).then(|| receiver.received()))
        }
    })
    .await;
    let log = pforte.log_text();
    pforte.stop()?;
    let delivered = delivered.map_err(|e| anyhow::anyhow!("{e}; log:\n{log}"))?;

    let ledger = ledger.lock().map_err(|_| anyhow::anyhow!("ledger"))?.clone();
    check_payments(&pool, &ledger).await?;
    check_notifications(&pool, &delivered).await?;
    let verify = pforte_command().args(["audit", "verify"]).envs(ctx.cli_env()).output()?;
    assert!(verify.status.success(), "audit verify: {}", output_text(&verify));
    let acted = ledger.values().filter(|e| e.act.is_some()).count();
    let retried = ledger.values().filter(|e| e.last.is_some()).count();
    println!(
        "crash test: {} payments ({retried} retried after a lost answer), {acted} paid/canceled/failed, \
         {} notifications ({} arrivals), {ROUNDS} kills",
        ledger.len(),
        delivered.iter().map(|d| &d.webhook_id).collect::<HashSet<_>>().len(),
        delivered.len()
    );
    Ok(())
}
backend_test!(kill_9_at_random_moments_loses_no_payment_state_change_or_notification);

/// Every 201 is in the database once with its transactionId; every status the citizen was shown is
/// there; nothing exists that no client asked for; no payment lacks its creation event or audit entry.
async fn check_payments(pool: &sqlx::AnyPool, ledger: &BTreeMap<String, Entry>) -> TestResult {
    let rows = sqlx::query("SELECT transaction_id, request_id, status FROM payments").fetch_all(pool).await?;
    let mut by_request: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for row in &rows {
        let request_id: String = row.try_get("request_id")?;
        by_request.entry(request_id).or_default().push((row.try_get("transaction_id")?, row.try_get("status")?));
    }
    for (request_id, entry) in ledger {
        let id = entry.created.as_ref().ok_or_else(|| anyhow::anyhow!("{request_id} never got its 201"))?;
        let stored = by_request.get(request_id).cloned().unwrap_or_default();
        assert_eq!(stored.len(), 1, "{request_id} exists exactly once: {stored:?}");
        let (stored_id, status) = &stored[0];
        assert_eq!(stored_id, id, "{request_id} keeps the transactionId its 201 named");
        match entry.act {
            Some((act, true)) => assert_eq!(status, act.status(), "{request_id}: the citizen saw {act:?}"),
            // The simulator keeps its payments in memory: one killed before pforte read it is forgotten.
            Some((act, false)) => assert!(status == act.status() || status == "INITIAL", "{request_id}: {status}"),
            None => assert_eq!(status, "INITIAL", "{request_id} was never on the pay page"),
        }
    }
    assert_eq!(rows.len(), ledger.len(), "no payment that no client asked for");

    let created_events: Vec<String> = sqlx::query_scalar(
        "SELECT transaction_id FROM payment_events WHERE from_status = 'INITIAL' AND to_status = 'INITIAL'",
    )
    .fetch_all(pool)
    .await?;
    let audited: Vec<String> =
        sqlx::query_scalar("SELECT subject FROM audit_log WHERE event = 'payment.created'").fetch_all(pool).await?;
    for row in &rows {
        let id: String = row.try_get("transaction_id")?;
        assert_eq!(created_events.iter().filter(|e| **e == id).count(), 1, "{id} has its creation event");
        assert_eq!(audited.iter().filter(|e| **e == id).count(), 1, "{id} has its audit entry");
    }
    Ok(())
}

/// Each status change has exactly one outbox message, written with it, and that message reached the
/// online service (at least once: a kill during delivery may repeat it).
async fn check_notifications(pool: &sqlx::AnyPool, delivered: &[crate::helpers::Delivery]) -> TestResult {
    let changes = sqlx::query("SELECT transaction_id, to_status FROM payment_events WHERE from_status <> to_status")
        .fetch_all(pool)
        .await?;
    let messages = sqlx::query("SELECT id, transaction_id, payload, delivered_at, gave_up_at FROM notification_outbox")
        .fetch_all(pool)
        .await?;
    let mut announced: HashMap<(String, String), Vec<String>> = HashMap::new();
    for message in &messages {
        let id: String = message.try_get("id")?;
        let payload: Value = serde_json::from_str(&message.try_get::<String, _>("payload")?)?;
        let status = payload["data"]["status"].as_str().unwrap_or_default().to_owned();
        announced.entry((message.try_get("transaction_id")?, status)).or_default().push(id.clone());
        assert!(message.try_get::<Option<i64>, _>("delivered_at")?.is_some(), "{id} delivered");
        assert!(message.try_get::<Option<i64>, _>("gave_up_at")?.is_none(), "{id} not given up");
    }
    assert_eq!(messages.len(), changes.len(), "one message per status change");
    let arrived: HashMap<&str, &Value> = delivered.iter().map(|d| (d.webhook_id.as_str(), &d.payload)).collect();
    for change in &changes {
        let key: (String, String) = (change.try_get("transaction_id")?, change.try_get("to_status")?);
        let ids = announced.get(&key).cloned().unwrap_or_default();
        assert_eq!(ids.len(), 1, "{key:?} announced once: {ids:?}");
        let payload = arrived.get(ids[0].as_str()).ok_or_else(|| anyhow::anyhow!("{key:?} never arrived"))?;
        assert_eq!(payload["data"]["transactionId"], key.0.as_str());
        assert_eq!(payload["data"]["status"], key.1.as_str());
    }
    Ok(())
}
