//! `pforte notifications list|show|redeliver` as an operator runs them: the real binary against the
//! database of a running pforte whose demo service receives (or refuses) the notifications.

use std::sync::atomic::Ordering;

use pforte::clock::{Clock, ManualClock};
use pforte::payment::state::Source;
use pforte::payment::Status;

use crate::helpers::{output_text, pforte_command, TestApp, TestContext, TestResult};
use crate::payments::{app_notifying, new_payment, notifier, receiver, signals};

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

/// A paid payment whose notification is in the outbox; returns the transaction and message ids.
async fn paid(app: &TestApp, request_id: &str) -> anyhow::Result<(String, String)> {
    let payment = new_payment(app, request_id);
    signals(app).create(&payment).await?;
    signals(app).record(&payment.transaction_id, Status::Payed, Source::Provider, None).await?;
    let message = app.state.db.notifications_of(&payment.transaction_id).await?.remove(0);
    Ok((payment.transaction_id, message.id))
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
    let app = app_notifying(&ctx, &receiver, clock.clone()).await?;
    let (transaction, id) = paid(&app, "req-gone").await?;
    assert_eq!(notifier(&app).deliver_due().await?.gave_up, 1);

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

    // The command put the message back at the machine's time; the test clock follows it there.
    clock.advance_secs(600);
    assert_eq!(notifier(&app).deliver_due().await?.delivered, 1);
    let received = receiver.received.lock().map(|r| r.clone()).unwrap_or_default();
    assert_eq!(received.iter().map(|(webhook_id, _)| webhook_id).collect::<Vec<_>>(), [&id], "the same message");
    let columns: Vec<String> =
        row(&ok(&ctx, &["notifications", "list"])?, &id).split_whitespace().map(str::to_owned).collect();
    assert_eq!(columns[3..], ["delivered", "2", "200", "-"]);

    let audit = app.state.db.audit_entries_after(0, 1000).await?;
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
    let app = app_notifying(&ctx, &receiver, clock.clone()).await?;
    let (_, id) = paid(&app, "req-failing").await?;
    let (_, other) = paid(&app, "req-failing-too").await?;
    assert_eq!(notifier(&app).deliver_due().await?.retried, 2);

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

    for _ in 0..40 {
        notifier(&app).deliver_due().await?;
        clock.advance_secs(3 * 3600);
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
