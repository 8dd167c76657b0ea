//! Finance imports and reconciliation through the real `pforte` binary: each import is all or
//! nothing, the same file twice imports nothing new, the size limit and the tenant are enforced, and a
//! reconciliation over payments paid through the simulator finds what was planted.

use std::path::{Path, PathBuf};

use chrono::{Days, Utc};
use serde_json::Value;

use crate::helpers::{output_text, pforte_command, TestApp, TestBackend, TestContext, TestResult};
use crate::keys::any_pool;

/// 09162000's account (config/tenants/09162000.toml) and 03241001's.
pub(crate) const MUENCHEN_IBAN: &str = "DE89370400440532013000";
const HANNOVER_IBAN: &str = "DE30250500000123456789";
const HEADER: &str = "Buchungsdatum;Transaktions-ID;Art;Brutto;Gebühr;Auszahlungsreferenz\n";

pub(crate) fn run(
    ctx: &TestContext,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> anyhow::Result<std::process::Output> {
    let mut command = pforte_command();
    command.args(args).envs(ctx.cli_env());
    for (key, value) in extra_env {
        command.env(key, value);
    }
    Ok(command.output()?)
}

pub(crate) fn write(ctx: &TestContext, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = ctx.dir.path().join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

pub(crate) fn import_settlement(
    ctx: &TestContext,
    file: &Path,
    env: &[(&str, &str)],
) -> anyhow::Result<std::process::Output> {
    let file = file.display().to_string();
    run(ctx, &["finance", "import", "settlement", "--tenant", "09162000", "--provider", "sim-pay", &file], env)
}

pub(crate) fn import_bank(ctx: &TestContext, tenant: &str, file: &Path) -> anyhow::Result<std::process::Output> {
    run(ctx, &["finance", "import", "bank", "--tenant", tenant, &file.display().to_string()], &[])
}

/// Rows in the import tables and finance entries in the audit log.
async fn stored(ctx: &TestContext) -> anyhow::Result<(i64, i64, i64, i64)> {
    let pool = any_pool(&ctx.database_url).await?;
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await }
    };
    let counts = (
        count("SELECT COUNT(*) FROM finance_imports").await?,
        count("SELECT COUNT(*) FROM settlement_rows").await?,
        count("SELECT COUNT(*) FROM bank_entries").await?,
        count("SELECT COUNT(*) FROM audit_log WHERE event = 'finance.import'").await?,
    );
    pool.close().await;
    Ok(counts)
}

pub(crate) fn settlement(rows: &[(&str, &str, &str, &str, &str)]) -> String {
    settlement_booked_on("29.11.2026", rows)
}

/// A settlement report whose rows are booked on `booked` (`dd.mm.yyyy`).
pub(crate) fn settlement_booked_on(booked: &str, rows: &[(&str, &str, &str, &str, &str)]) -> String {
    let mut text = HEADER.to_owned();
    for (transaction, kind, gross, fee, payout) in rows {
        text.push_str(&format!("{booked};{transaction};{kind};{gross};{fee};{payout}\n"));
    }
    text
}

pub(crate) fn camt(iban: &str, entries: &[(&str, &str, &str)]) -> String {
    let mut ntry = String::new();
    for (reference, amount, remittance) in entries {
        ntry.push_str(&format!(
            "<Ntry><Amt Ccy=\"EUR\">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>\
             <BookgDt><Dt>{today}</Dt></BookgDt><ValDt><Dt>{today}</Dt></ValDt><AcctSvcrRef>{reference}</AcctSvcrRef>\
             <NtryDtls><TxDtls><RmtInf><Ustrd>{remittance}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>",
            today = berlin_today()
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt>\
         <GrpHdr><MsgId>M1</MsgId></GrpHdr><Stmt><Id>S1</Id><Acct><Id><IBAN>{iban}</IBAN></Id></Acct>{ntry}</Stmt>\
         </BkToCstmrStmt></Document>"
    )
}

pub(crate) fn berlin_today() -> String {
    Utc::now().with_timezone(&chrono_tz::Europe::Berlin).date_naive().to_string()
}

/// The third row fails in the database (a trigger planted by the test), after the header and two rows
/// were written: the transaction takes all of them back.
pub async fn an_import_failing_midway_stores_nothing(ctx: TestContext) -> TestResult {
    let migrated = run(&ctx, &["migrate"], &[])?;
    assert!(migrated.status.success(), "{}", output_text(&migrated));
    let pool = any_pool(&ctx.database_url).await?;
    match ctx.backend {
        TestBackend::Sqlite => {
            sqlx::query(
                "CREATE TRIGGER boom BEFORE INSERT ON settlement_rows WHEN NEW.provider_transaction = 'BOOM' \
                 BEGIN SELECT RAISE(ABORT, 'planted failure'); END",
            )
            .execute(&pool)
            .await?;
        }
        TestBackend::Postgres(_) => {
            sqlx::query(
                "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN \
                 IF NEW.provider_transaction = 'BOOM' THEN RAISE EXCEPTION 'planted failure'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql",
            )
            .execute(&pool)
            .await?;
            sqlx::query("CREATE TRIGGER boom BEFORE INSERT ON settlement_rows FOR EACH ROW EXECUTE FUNCTION boom()")
                .execute(&pool)
                .await?;
        }
    }
    pool.close().await;
    let file = write(
        &ctx,
        "abrechnung.csv",
        &settlement(&[
            ("T-1", "Zahlung", "12,00", "0,30", "PO-1"),
            ("T-2", "Zahlung", "8,00", "0,20", "PO-1"),
            ("BOOM", "Zahlung", "1,00", "0", "PO-1"),
        ]),
    )?;
    let output = import_settlement(&ctx, &file, &[])?;
    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    assert_eq!(stored(&ctx).await?, (0, 0, 0, 0), "no header, no rows, no audit entry");
    Ok(())
}
backend_test!(an_import_failing_midway_stores_nothing);

pub async fn a_malformed_settlement_row_refuses_the_whole_file_naming_its_line(ctx: TestContext) -> TestResult {
    let mut text =
        settlement(&[("T-1", "Zahlung", "12,00", "0,30", "PO-1"), ("T-2", "Zahlung", "8,00", "0,20", "PO-1")]);
    text.push_str("29.11.2026;T-3;Zahlung;zwölf;0,20;PO-1\n");
    let output = import_settlement(&ctx, &write(&ctx, "kaputt.csv", &text)?, &[])?;
    let said = output_text(&output);
    assert_eq!(output.status.code(), Some(4), "{said}");
    assert!(said.contains("line 4") && said.contains("`zwölf`") && said.contains("nothing imported"), "{said}");
    assert_eq!(stored(&ctx).await?, (0, 0, 0, 0));
    Ok(())
}
backend_test!(a_malformed_settlement_row_refuses_the_whole_file_naming_its_line);

pub async fn a_malformed_bank_statement_is_refused_naming_its_element(ctx: TestContext) -> TestResult {
    let text = camt(MUENCHEN_IBAN, &[("B-1", "12.00", "x")]).replace("<Ntry>", "<!DOCTYPE x><Ntry>");
    let output = import_bank(&ctx, "09162000", &write(&ctx, "doctype.xml", &text)?)?;
    assert_eq!(output.status.code(), Some(4), "{}", output_text(&output));
    let truncated = camt(MUENCHEN_IBAN, &[("B-1", "12.00", "x")]);
    let truncated = &truncated[..truncated.len() - 40];
    let output = import_bank(&ctx, "09162000", &write(&ctx, "truncated.xml", truncated)?)?;
    let said = output_text(&output);
    assert_eq!(output.status.code(), Some(4), "{said}");
    assert!(said.contains("Document/BkToCstmrStmt"), "{said}");
    assert_eq!(stored(&ctx).await?, (0, 0, 0, 0));
    Ok(())
}
backend_test!(a_malformed_bank_statement_is_refused_naming_its_element);

pub async fn the_same_file_twice_imports_nothing_new(ctx: TestContext) -> TestResult {
    let file = write(&ctx, "abrechnung.csv", &settlement(&[("T-1", "Zahlung", "12,00", "0,30", "PO-1")]))?;
    let first = import_settlement(&ctx, &file, &[])?;
    let first_text = output_text(&first);
    assert!(first.status.success(), "{first_text}");
    let id = first_text.split_whitespace().nth(1).unwrap_or_default().trim_end_matches(':').to_owned();
    assert!(id.starts_with("imp_"), "{first_text}");
    // Under another name, still the same content.
    let copy = write(&ctx, "abrechnung-kopie.csv", &std::fs::read_to_string(&file)?)?;
    let second = import_settlement(&ctx, &copy, &[])?;
    let second_text = output_text(&second);
    assert!(second.status.success(), "{second_text}");
    assert!(second_text.contains(&format!("already imported as {id}")), "{second_text}");
    assert_eq!(stored(&ctx).await?, (1, 1, 0, 1));

    let statement = write(&ctx, "auszug.xml", &camt(MUENCHEN_IBAN, &[("B-1", "11.70", "PO-1")]))?;
    assert!(import_bank(&ctx, "09162000", &statement)?.status.success());
    let again = import_bank(&ctx, "09162000", &statement)?;
    assert!(output_text(&again).contains("already imported as"), "{}", output_text(&again));
    assert_eq!(stored(&ctx).await?, (2, 1, 1, 2));
    Ok(())
}
backend_test!(the_same_file_twice_imports_nothing_new);

pub async fn a_file_over_the_size_limit_is_refused_unread(ctx: TestContext) -> TestResult {
    let text = settlement(&[("T-1", "Zahlung", "12,00", "0,30", "PO-1"), ("T-2", "Zahlung", "8,00", "0,20", "PO-1")]);
    let file = write(&ctx, "gross.csv", &text)?;
    let limit = (text.len() - 1).to_string();
    let output = import_settlement(&ctx, &file, &[("PFORTE__FINANCE__IMPORT_MAX_BYTES", &limit)])?;
    let said = output_text(&output);
    assert_eq!(output.status.code(), Some(4), "{said}");
    assert!(said.contains("over the limit") && said.contains("finance.import_max_bytes"), "{said}");
    let exact = text.len().to_string();
    let output = import_settlement(&ctx, &file, &[("PFORTE__FINANCE__IMPORT_MAX_BYTES", &exact)])?;
    assert!(output.status.success(), "a file of exactly the limit is fine: {}", output_text(&output));
    assert_eq!(stored(&ctx).await?, (1, 2, 0, 1));
    Ok(())
}
backend_test!(a_file_over_the_size_limit_is_refused_unread);

pub async fn a_file_of_another_tenant_is_refused(ctx: TestContext) -> TestResult {
    let migrated = run(&ctx, &["migrate"], &[])?;
    assert!(migrated.status.success(), "{}", output_text(&migrated));
    // Hannover's payment, at provider sim-pay as far as this test is concerned.
    let pool = any_pool(&ctx.database_url).await?;
    sqlx::query(
        "INSERT INTO payments (transaction_id, originator_id, endpoint_id, client_id, request_id, request, gros_amount, \
         provider_id, provider_reference, status, created_at, updated_at, expires_at) \
         VALUES ('tx-h', 'demo-service', '03241001', 'demo', 'R-H', '{}', '5.00', 'sim-pay', 'SIM-HANNOVER', 'PAYED', 1, 1, 2)",
    )
    .execute(&pool)
    .await?;
    pool.close().await;
    let text = settlement(&[
        ("SIM-OWN", "Zahlung", "12,00", "0,30", "PO-1"),
        ("SIM-HANNOVER", "Zahlung", "5,00", "0,10", "PO-1"),
    ]);
    let output = import_settlement(&ctx, &write(&ctx, "fremd.csv", &text)?, &[])?;
    let said = output_text(&output);
    assert_eq!(output.status.code(), Some(4), "{said}");
    assert!(said.contains("line 3") && said.contains("SIM-HANNOVER") && said.contains("03241001"), "{said}");

    let statement = write(&ctx, "auszug.xml", &camt(HANNOVER_IBAN, &[("B-1", "11.70", "PO-1")]))?;
    let output = import_bank(&ctx, "09162000", &statement)?;
    let said = output_text(&output);
    assert_eq!(output.status.code(), Some(4), "{said}");
    assert!(said.contains("another tenant") && !said.contains(HANNOVER_IBAN), "the IBAN is masked: {said}");
    assert!(import_bank(&ctx, "03241001", &statement)?.status.success(), "it is Hannover's statement");
    assert_eq!(stored(&ctx).await?, (1, 0, 1, 1));
    Ok(())
}
backend_test!(a_file_of_another_tenant_is_refused);

/// A fee of 12.00 to München, paid on simulator A's pay page; returns pforte's transaction id.
pub(crate) async fn pay_through_simulator(app: &TestApp, token: &str, request_id: &str) -> anyhow::Result<String> {
    // Written as a client would send it, so the amounts keep their two decimals.
    let body: Value = serde_json::from_str(&format!(
        r#"{{"requestId": "{request_id}", "requestTimestamp": "2026-11-29T10:00:00+01:00", "currency": "EUR",
            "grosAmount": 12.00, "purpose": "Gebuehr", "redirectUrl": "{}",
            "items": [{{"id": "1", "quantity": 1, "singleNetAmount": 12.00, "totalNetAmount": 12.00}}]}}"#,
        app.url("/demo/bezahlt")
    ))?;
    let created: Value = app
        .client
        .post(app.url("/paymenttransaction/demo-service/09162000"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let id = created["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned();
    let location = |r: &reqwest::Response| {
        r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    let pay_page = location(&app.client.get(app.url(&format!("/pay/{id}"))).send().await?);
    let paid = app.client.post(&pay_page).form(&[("method", "CREDITCARD"), ("action", "pay")]).send().await?;
    app.client.get(location(&paid)).send().await?;
    Ok(id)
}

/// Three fees paid through simulator A; the provider's report settles one correctly, one with another
/// amount and one transaction pforte never saw; the bank shows the payout with a different amount.
pub async fn reconciling_simulator_payments_finds_what_was_planted(ctx: TestContext) -> TestResult {
    let app = ctx.spawn_app().await;
    let token = crate::payment_api::bearer(&app).await?;
    let mut references = Vec::new();
    let mut ids = Vec::new();
    for request_id in ["FIN-1", "FIN-2", "FIN-3"] {
        let id = pay_through_simulator(&app, &token, request_id).await?;
        let row = app.state.db.payment(&id).await?.expect("payment");
        assert_eq!(row.status.as_str(), "PAYED");
        references.push(row.provider_reference.unwrap_or_default());
        ids.push(id);
    }
    app.stop().await?;

    let today = chrono::NaiveDate::parse_from_str(&berlin_today(), "%Y-%m-%d")?;
    let booked = today.format("%d.%m.%Y").to_string();
    let csv = format!(
        "{HEADER}{booked};{};Zahlung;12,00;0,30;PO-77\n{booked};{};Zahlung;11,00;0,30;PO-77\n{booked};SIM-UNKNOWN;Zahlung;4,00;0,10;PO-77\n",
        references[0], references[1]
    );
    assert!(import_settlement(&ctx, &write(&ctx, "abrechnung.csv", &csv)?, &[])?.status.success());
    // Net of the payout: 11.70 + 10.70 + 3.90 = 26.30; the bank credited 26.00.
    let statement = write(&ctx, "auszug.xml", &camt(MUENCHEN_IBAN, &[("B-1", "26.00", "SAMMELAUSZAHLUNG PO-77")]))?;
    assert!(import_bank(&ctx, "09162000", &statement)?.status.success());

    let from = today.checked_sub_days(Days::new(1)).unwrap_or(today).to_string();
    let to = today.checked_add_days(Days::new(1)).unwrap_or(today).to_string();
    let output = run(&ctx, &["finance", "reconcile", "--tenant", "09162000", "--from", &from, "--to", &to], &[])?;
    assert!(output.status.success(), "{}", output_text(&output));
    let report: Value = serde_json::from_slice(&output.stdout)?;
    let mut found: Vec<(String, String)> = report["findings"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|f| {
                    (f["category"].as_str().unwrap_or("").to_owned(), f["subject"].as_str().unwrap_or("").to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    let mut expected = vec![
        ("matched".to_owned(), ids[0].clone()),
        ("amount_mismatch".to_owned(), ids[1].clone()),
        ("missing_in_settlement".to_owned(), ids[2].clone()),
        ("unknown_to_pforte".to_owned(), "SIM-UNKNOWN".to_owned()),
        ("payout_amount_mismatch".to_owned(), "PO-77".to_owned()),
    ];
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(report["totals"]["paid"], "36.00");
    let mismatch =
        report["findings"].as_array().and_then(|f| f.iter().find(|f| f["category"] == "amount_mismatch")).cloned();
    let mismatch = mismatch.unwrap_or_default();
    assert_eq!(
        (mismatch["pforte"]["amount"].as_str(), mismatch["settlement"][0]["gross"].as_str()),
        (Some("12.00"), Some("11.00"))
    );
    assert_eq!(mismatch["settlement"][0]["line"], 3);

    let csv = run(
        &ctx,
        &["finance", "reconcile", "--tenant", "09162000", "--from", &from, "--to", &to, "--format", "csv"],
        &[],
    )?;
    let text = String::from_utf8(csv.stdout)?;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "category;transaction;provider reference;Kassenzeichen;pforte evidence;settlement evidence;bank evidence;amounts"
    );
    assert_eq!(lines.len(), 1 + expected.len());
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("payout_amount_mismatch;PO-77;") && l.ends_with(";payout net 26.30, bank 26.00")),
        "{text}"
    );

    let unknown = run(&ctx, &["finance", "reconcile", "--tenant", "99999999", "--from", &from, "--to", &to], &[])?;
    assert_eq!(unknown.status.code(), Some(4));
    let backwards = run(&ctx, &["finance", "reconcile", "--tenant", "09162000", "--from", &to, "--to", &from], &[])?;
    assert_eq!(backwards.status.code(), Some(4));
    Ok(())
}
backend_test!(reconciling_simulator_payments_finds_what_was_planted);

pub async fn finance_help_explains_import_and_reconcile() -> TestResult {
    for (args, words) in [
        (&["finance", "--help"][..], &["import", "reconcile"][..]),
        (&["finance", "import", "--help"][..], &["settlement", "bank"][..]),
        (&["finance", "reconcile", "--help"][..], &["--tenant", "--from", "--to", "--format"][..]),
    ] {
        let output = pforte_command().args(args).output()?;
        let text = output_text(&output);
        assert!(output.status.success(), "{text}");
        for word in words {
            assert!(text.contains(word), "{args:?} lacks {word}: {text}");
        }
    }
    Ok(())
}
plain_test!(finance_help_explains_import_and_reconcile);
