//! `pforte notifications list|show|redeliver` as an operator runs them: the real binary against the
//! database of a running pforte whose demo service receives (or refuses) the notifications.

use std::sync::atomic::Ordering;

use std::time::Duration;

use pforte::clock::{Clock, ManualClock};

use crate::helpers::{eventually, output_text, pforte_command, TestApp, TestContext, TestResult};
use crate::payment_api::bearer;
use crate::payment_surface::{open_payment, pay_at_provider};
use crate::payments::{app_notifying_with, receiver};

fn run(ctx: &TestContext, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(pforte_command().args(args).envs(ctx.cli_env()).output()?)
}

/// Runs a command that must succeed and returns what it printed on standard output (the log goes to
/// standard error).
fn ok(ctx: &TestContext, args: &[&str]) -> anyhow::Result<String> {
    let output = run(ctx, args)?;
    anyhow::ensure!(output.status.success(), "{args:?} failed: {}", output_text(&output));
    Ok(String::from_utf8(output.stdout)?)
}

/// A payment the demo service creates and the citizen pays on the simulator's page; returns the
/// transaction id and the id of its notification as `pforte notifications list` shows it.
async fn paid(ctx: &TestContext, app: &TestApp, request_id: &str) -> anyhow::Result<(String, String)> {
    let token = bearer(app).await?;
    let transaction = open_payment(app, &token, request_id).await?;
    pay_at_provider(app, &transaction, "CREDITCARD").await?;
    app.client.get(app.url(&format!("/pay/{transaction}/return"))).send().await?;
    let list = ok(ctx, &["notifications", "list", "--transaction", &transaction])?;
    let id = list.lines().nth(1).and_then(|line| line.split_whitespace().next()).unwrap_or_default().to_owned();
    anyhow::ensure!(id.starts_with("msg_"), "one notification of {transaction}: {list}");
    Ok((transaction, id))
}

/// Waits until the list row of `id` shows `columns` from the state column on (the delivery worker
/// runs every second); returns the row's columns.
async fn row_becomes(ctx: &TestContext, id: &str, columns: &[&str]) -> anyhow::Result<Vec<String>> {
    let wanted: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
    eventually(Duration::from_secs(20), &format!("{id} shown as {columns:?}"), || {
        let found = ok(ctx, &["notifications", "list"]).map(|list| {
            let columns: Vec<String> = row(&list, id).split_whitespace().map(str::to_owned).collect();
            (columns.len() >= 3 + wanted.len() && columns[3..3 + wanted.len()] == wanted[..]).then_some(columns)
        });
        async move { found }
    })
    .await
}

/// The line of the list that names `id`.
fn row<'t>(list: &'t str, id: &str) -> &'t str {
    list.lines().find(|line| line.starts_with(id)).unwrap_or_default()
}

pub async fn a_receiver_answering_gone_is_shown_disabled_and_redelivery_reaches_it_once_back(
    ctx: TestContext,
) -> TestResult {
    let receiver = receiver().await?;
    receiver.status.store(410, Ordering::SeqCst);
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_notifying_with(&ctx, &receiver, clock.clone(), true).await?;
    let (transaction, id) = paid(&ctx, &app, "req-gone").await?;
    row_becomes(&ctx, &id, &["disabled"]).await?;

    let list = ok(&ctx, &["notifications", "list"])?;
    let line = row(&list, &id);
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns, [id.as_str(), transaction.as_str(), "127.0.0.1", "disabled", "1", "410", "-"], "{list}");
    assert!(list.starts_with("ID"), "a header: {list}");
    assert!(row(&ok(&ctx, &["notifications", "list", "--state", "disabled"])?, &id).contains("disabled"));
    assert_eq!(ok(&ctx, &["notifications", "list", "--state", "pending"])?, "no notifications\n");
    assert_eq!(ok(&ctx, &["notifications", "list", "--transaction", "another"])?, "no notifications\n");
    assert!(!row(&ok(&ctx, &["notifications", "list", "--transaction", &transaction])?, &id).is_empty());

    let shown = ok(&ctx, &["notifications", "show", &id])?;
    assert!(shown.contains("disabled (the endpoint answered 410 Gone)"), "{shown}");
    assert!(shown.contains("payment.status_changed") && shown.contains(&receiver.url), "{shown}");
    let attempt = shown.lines().last().unwrap_or_default();
    assert!(attempt.starts_with("1 ") && attempt.contains(" 410 ") && attempt.contains(" ms"), "{shown}");
    assert!(!shown.contains("whsec_"), "never the signing secret: {shown}");

    receiver.status.store(200, Ordering::SeqCst);
    let queued = ok(&ctx, &["notifications", "redeliver", &id])?;
    assert!(queued.contains("back in line"), "{queued}");
    let again = run(&ctx, &["notifications", "redeliver", &id])?;
    assert_eq!(again.status.code(), Some(1), "only a given-up message goes back in line");
    assert!(output_text(&again).contains("is pending"), "{}", output_text(&again));

    // The command put the message back at the machine's time; the test clock follows it there and
    // the worker delivers it.
    clock.advance_secs(600);
    let columns = row_becomes(&ctx, &id, &["delivered"]).await?;
    assert_eq!(columns[3..], ["delivered", "2", "200", "-"]);
    let received = receiver.received.lock().map(|r| r.clone()).unwrap_or_default();
    assert_eq!(received.iter().map(|(webhook_id, _)| webhook_id).collect::<Vec<_>>(), [&id], "the same message");

    let audit = crate::audit::chained_events(&app).await?;
    let entry = audit.iter().find(|e| e.event == "notification.redelivered").expect("the redelivery is audited");
    assert_eq!((entry.actor.as_str(), entry.subject.as_str()), ("operator", id.as_str()));
    assert!(entry.details.contains("\"was\":\"disabled\""), "{}", entry.details);
    app.stop().await
}
backend_test!(a_receiver_answering_gone_is_shown_disabled_and_redelivery_reaches_it_once_back);

pub async fn a_receiver_that_keeps_failing_is_pending_with_its_next_attempt_then_failed(
    ctx: TestContext,
) -> TestResult {
    let receiver = receiver().await?;
    receiver.status.store(500, Ordering::SeqCst);
    let clock = ManualClock::at_millis(chrono::Utc::now().timestamp_millis());
    let app = app_notifying_with(&ctx, &receiver, clock.clone(), true).await?;
    let (_, id) = paid(&ctx, &app, "req-failing").await?;
    let (_, other) = paid(&ctx, &app, "req-failing-too").await?;
    for message in [&id, &other] {
        row_becomes(&ctx, message, &["pending", "1", "500"]).await?;
    }

    let list = ok(&ctx, &["notifications", "list", "--state", "pending"])?;
    let columns: Vec<&str> = row(&list, &id).split_whitespace().collect();
    assert_eq!(columns[3..6], ["pending", "1", "500"], "{list}");
    let next = columns[6..].join(" ");
    let due = clock.now_millis() + 30_000;
    let window = (due - 7_000)..=(due + 7_000);
    let next_millis = chrono::NaiveDateTime::parse_from_str(&next, "%Y-%m-%d %H:%M:%SZ")?.and_utc().timestamp_millis();
    assert!(window.contains(&next_millis), "the first retry 30 s ± 20 % later: {next}");
    assert_eq!(ok(&ctx, &["notifications", "list", "--limit", "1"])?.lines().count(), 2, "header and one row");
    let refused = run(&ctx, &["notifications", "redeliver", &id])?;
    assert_eq!(refused.status.code(), Some(1), "pending messages are in line already");

    // Three days on, the next failure is the last: the worker gives up.
    clock.advance_secs(3 * 24 * 3600);
    for message in [&id, &other] {
        row_becomes(&ctx, message, &["failed"]).await?;
    }
    let failed = ok(&ctx, &["notifications", "list", "--state", "failed"])?;
    assert!(row(&failed, &id).contains("failed") && row(&failed, &other).contains("failed"), "{failed}");
    let shown = ok(&ctx, &["notifications", "show", &id])?;
    assert!(shown.contains("failed (not delivered within three days)"), "{shown}");

    let unknown = run(&ctx, &["notifications", "show", "msg_unknown"])?;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(output_text(&unknown).contains("no notification msg_unknown"));
    let bad_state = run(&ctx, &["notifications", "list", "--state", "gone"])?;
    assert_eq!(bad_state.status.code(), Some(2), "a usage error");
    assert!(output_text(&bad_state).contains("pending, delivered, failed or disabled"));
    app.stop().await
}
backend_test!(a_receiver_that_keeps_failing_is_pending_with_its_next_attempt_then_failed);
