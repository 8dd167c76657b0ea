//! Issue 16: status changes (cancels) and refunds while the database is cut. Half the clients
//! create a payment and cancel it, again and again; the other half refund 0.01 of their own paid
//! payment, again and again, each refund under its own Idempotency-Key. Every answer is a success or
//! 503; after the restore, retrying what met the outage leaves each payment canceled once and every
//! refund stored exactly once, named by an answer. A settlement import cut half-way stores nothing,
//! says so, and the same command imports the file once after the restore.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::Row;

use crate::faults_db::{app_behind_proxy, assert_only_success_or_unavailable, under_an_outage, Answer, CLIENTS};
use crate::helpers::{eventually, TestApp, TestContext, TestResult};
use crate::keys::any_pool;
use crate::payment_api::{bearer, body};
use crate::payment_surface::{id_of, paid_payment, payment_path, TENANT};

/// How long a client waits after a 503 before its next request.
const BACKOFF_AFTER_503: Duration = Duration::from_millis(100);

/// A refund refused because the payment has nothing left to refund: on a fast machine the clients'
/// 0.01 refunds use up the 12.00 of their payment, and a refund retried after that is refused so.
fn nothing_left(answer: &Answer) -> bool {
    answer.status == 400 && answer.body.contains("CALCULATION_ERROR")
}

async fn send(request: reqwest::RequestBuilder, label: String) -> Answer {
    Answer::from(label, request.timeout(Duration::from_secs(40)).send().await).await
}

fn cancel(app: &TestApp, token: &str, id: &str) -> reqwest::RequestBuilder {
    app.client.post(app.url(&format!("{}/cancel", payment_path(id)))).bearer_auth(token)
}

fn refund(app: &TestApp, token: &str, id: &str, key: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("{}/refunds", payment_path(id))))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .header("content-type", "application/json")
        .body(r#"{"amount": 0.01}"#)
}

/// Even clients: create and cancel (the answer of the cancel, or of a create that failed). Odd
/// clients: one refund of their paid payment.
async fn work(app: Arc<TestApp>, token: String, paid: Arc<Vec<String>>, client: usize, n: usize) -> Answer {
    if client % 2 == 0 {
        let request_id = format!("C-{client}-{n}");
        let create = app
            .client
            .post(app.url(&format!("/paymenttransaction/demo-service/{TENANT}")))
            .bearer_auth(&token)
            .json(&body(&app, &request_id));
        let created = send(create, format!("create {request_id}")).await;
        if created.status != 201 {
            return created;
        }
        let id = id_of(&serde_json::from_str(&created.body).unwrap_or_default());
        send(cancel(&app, &token, &id), format!("cancel {id}")).await
    } else {
        let (id, key) = (&paid[client / 2], format!("refund-{client}-{n}"));
        send(refund(&app, &token, id, &key), format!("refund {id} {key}")).await
    }
}

pub async fn a_database_cut_during_cancels_and_refunds_answers_only_success_or_503_and_loses_nothing(
    ctx: TestContext,
) -> TestResult {
    let (proxy, app) = app_behind_proxy(&ctx, |f| f).await?;
    let app = Arc::new(app);
    let token = bearer(&app).await?;
    let mut paid = Vec::new();
    for client in 0..CLIENTS / 2 {
        paid.push(paid_payment(&app, &token, &format!("PAID-{client}")).await?);
    }
    let paid = Arc::new(paid);
    let (answers, restored) = under_an_outage(&proxy, {
        let (app, token, paid) = (app.clone(), token.clone(), paid.clone());
        move |client, n| {
            let (app, token, paid) = (app.clone(), token.clone(), paid.clone());
            async move {
                let answer = work(app, token, paid, client, n).await;
                if answer.status == 503 {
                    // A client told to come back later waits a moment, as the Retry-After asks
                    // (shortened). Hammering without pause made tens of thousands of 503s, and
                    // retrying each of them below outlived the test's time and the token.
                    tokio::time::sleep(BACKOFF_AFTER_503).await;
                }
                Some(answer)
            }
        }
    })
    .await?;
    assert_only_success_or_unavailable("cancels and refunds", &answers, restored)?;
    // The retries come from a client that has been at it for minutes: its access token (300 s) may
    // have run out on a slow machine, so it gets a new one, as any client would.
    let token = bearer(&app).await?;

    // Retry what met the outage: a cancel ends canceled (a conflict naming CANCELED when the first
    // went through unanswered); a refund under its key is answered with the refund.
    let mut canceled = BTreeSet::new();
    let mut refunds: BTreeMap<String, String> = BTreeMap::new();
    for answer in &answers {
        let words: Vec<&str> = answer.label.split(' ').collect();
        match words.as_slice() {
            ["cancel", id] => {
                canceled.insert((*id).to_owned());
                if answer.status == 503 {
                    let again = send(cancel(&app, &token, id), answer.label.clone()).await;
                    let ended = again.status == 200 || (again.status == 409 && again.body.contains("CANCELED"));
                    assert!(ended, "retried cancel of {id}: {} {}", again.status, again.body);
                }
            }
            ["refund", id, key] => {
                let answer = if answer.status == 503 {
                    eventually(Duration::from_secs(20), "a retried refund is answered", || async {
                        let again = send(refund(&app, &token, id, key), answer.label.clone()).await;
                        anyhow::ensure!(
                            matches!(again.status, 201 | 409 | 503) || nothing_left(&again),
                            "{} {}",
                            again.status,
                            again.body
                        );
                        Ok((again.status == 201 || nothing_left(&again)).then_some(again))
                    })
                    .await?
                } else {
                    answer.clone()
                };
                if nothing_left(&answer) {
                    // Retried after others used up the payment: this key's refund was never stored
                    // (a stored one would have been replayed), which the comparison below checks.
                    continue;
                }
                let body: Value = serde_json::from_str(&answer.body)?;
                refunds.insert((*key).to_owned(), body["refundId"].as_str().unwrap_or_default().to_owned());
            }
            _ => {}
        }
    }

    let pool = any_pool(&ctx.database_url).await?;
    for id in &canceled {
        let row = sqlx::query(
            "SELECT status, (SELECT COUNT(*) FROM payment_events e WHERE e.transaction_id = p.transaction_id \
             AND e.to_status = 'CANCELED') AS cancels FROM payments p WHERE transaction_id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await?;
        let (status, cancels): (String, i64) = (row.try_get("status")?, row.try_get("cancels")?);
        assert_eq!((status.as_str(), cancels), ("CANCELED", 1), "{id} is canceled once");
    }
    let stored: BTreeSet<String> =
        sqlx::query_scalar("SELECT refund_id FROM payment_refunds").fetch_all(&pool).await?.into_iter().collect();
    let answered: BTreeSet<String> = refunds.values().cloned().collect();
    assert_eq!(answered.len(), refunds.len(), "each key has its own refund");
    assert_eq!(stored, answered, "every refund stored is one an answer named, and the other way round");
    println!("cancels and refunds: {} payments canceled, {} refunds", canceled.len(), refunds.len());
    Ok(())
}
postgres_test!(a_database_cut_during_cancels_and_refunds_answers_only_success_or_503_and_loses_nothing);

pub async fn a_database_cut_during_a_settlement_import_stores_nothing_and_the_rerun_imports_it_once(
    ctx: TestContext,
) -> TestResult {
    ctx.cli_ok(&["migrate"])?;
    let rows: Vec<(String, &str, &str, &str, &str)> =
        (0..1500).map(|n| (format!("T-{n}"), "Zahlung", "1,00", "0,01", "PO-1")).collect();
    let rows: Vec<(&str, &str, &str, &str, &str)> =
        rows.iter().map(|(t, k, g, f, p)| (t.as_str(), *k, *g, *f, *p)).collect();
    let file = crate::reconciliation::write(&ctx, "abrechnung.csv", &crate::reconciliation::settlement(&rows))?;
    let (proxy, proxied) = crate::tcp_proxy::TcpProxy::in_front_of(&ctx.database_url).await?;
    // Slow enough that the import (one insert per row) is still running when the cut comes.
    proxy.set_latency(Duration::from_millis(2));
    let import = crate::helpers::pforte_command()
        .args(["finance", "import", "settlement", "--tenant", TENANT, "--provider", "sim-pay"])
        .arg(&file)
        .envs(ctx.cli_env())
        .env("PFORTE__DATABASE__URL", &proxied)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let import = tokio::task::spawn_blocking(move || import.wait_with_output());
    // Cut once the rows are being written (the server shows the import's insert running).
    let pool = any_pool(&ctx.database_url).await?;
    eventually(Duration::from_secs(20), "the import is writing rows", || async {
        let writing: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO settlement_rows%'")
                .fetch_one(&pool)
                .await?;
        Ok((writing > 0).then_some(()))
    })
    .await?;
    proxy.cut();
    let output = import.await??;
    proxy.restore();
    let text = crate::helpers::output_text(&output);
    assert_eq!(output.status.code(), Some(1), "the import fails: {text}");
    assert!(text.contains("nothing was imported") && text.contains("Run the same command again"), "{text}");

    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await }
    };
    let stored = || async {
        anyhow::Ok((
            count("SELECT COUNT(*) FROM finance_imports").await?,
            count("SELECT COUNT(*) FROM settlement_rows").await?,
            count("SELECT COUNT(*) FROM audit_log WHERE event = 'finance.import'").await?,
        ))
    };
    assert_eq!(stored().await?, (0, 0, 0), "nothing of the broken import is stored");
    let again = crate::reconciliation::import_settlement(&ctx, &file, &[])?;
    assert!(again.status.success(), "{}", crate::helpers::output_text(&again));
    assert_eq!(stored().await?, (1, 1500, 1), "the rerun imports the file once");
    Ok(())
}
postgres_test!(a_database_cut_during_a_settlement_import_stores_nothing_and_the_rerun_imports_it_once);
