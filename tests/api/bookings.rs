//! Booking exports as finance staff fetch them: fees paid through the simulator pay page and
//! booked by pforte, exported as CSV, JSON and camt.054; reproducible, streamed.

use std::str::FromStr;

use chrono::{Days, Utc};
use chrono_tz::Europe::Berlin;
use pforte::finance::ledger;
use quick_xml::events::Event;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::finance::{finance_token, get_bookings};
use crate::helpers::{TestApp, TestContext, TestResult};
use crate::ledger::{payment_row, quiet_app};
use crate::payment_api::{bearer, location};

const HEADER: &str = "journalId;bookingType;bookingDate;bookedAt;transactionId;requestId;originatorId;\
                      transactionReference;purpose;Haushaltsstelle;Objektnummer;bookingData;amount;currency;\
                      paymentMethod;paymentMethodDetail;provider;paidAt;refundId;reverses;paidAfterTimeout\r\n";

/// Yesterday to tomorrow in Berlin: today's bookings, even around midnight.
pub(crate) fn around_today() -> String {
    let today = Utc::now().with_timezone(&Berlin).date_naive();
    let from = today.checked_sub_days(Days::new(1)).unwrap_or(today);
    let to = today.checked_add_days(Days::new(1)).unwrap_or(today);
    format!("from={from}&to={to}")
}

/// Creates a payment through the payment API and pays it on the simulator's page; returns its id.
async fn pay(app: &TestApp, request_id: &str, amount: &str, booking: Value) -> anyhow::Result<String> {
    let token = bearer(app).await?;
    let amount: Value = serde_json::from_str(amount)?;
    let body = json!({
        "requestId": request_id, "requestTimestamp": "2026-11-29T10:00:00+01:00", "currency": "EUR",
        "grosAmount": amount, "purpose": format!("Gebuehr {request_id}"), "redirectUrl": app.url("/demo"),
        "items": [{ "totalNetAmount": amount, "bookingData": booking }]
    });
    let created: Value = app
        .client
        .post(app.url("/paymenttransaction/demo-service/09162000"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let id = created["paymentInformation"]["transactionId"].as_str().unwrap_or_default().to_owned();
    let pay_page = location(&app.client.get(app.url(&format!("/pay/{id}"))).send().await?);
    let paid = app.client.post(&pay_page).form(&[("method", "CREDITCARD"), ("action", "pay")]).send().await?;
    app.client.get(location(&paid)).send().await?;
    assert_eq!(app.state.db.payment(&id).await?.map(|p| p.status.as_str()), Some("PAYED"));
    Ok(id)
}

/// Refunds `amount` of a paid fee through the payment API, as the online service does; returns the
/// refund's id.
async fn refund(app: &TestApp, transaction_id: &str, amount: &str) -> anyhow::Result<String> {
    let token = bearer(app).await?;
    let amount: Value = serde_json::from_str(amount)?;
    let response = app
        .client
        .post(app.url(&format!("/paymenttransaction/demo-service/09162000/{transaction_id}/refunds")))
        .bearer_auth(&token)
        .json(&json!({ "amount": amount }))
        .send()
        .await?;
    anyhow::ensure!(response.status() == 201, "refund answered {}", response.status());
    let refund: Value = response.json().await?;
    Ok(refund["refundId"].as_str().unwrap_or_default().to_owned())
}

async fn body(app: &TestApp, token: &str, query: &str) -> anyhow::Result<Vec<u8>> {
    let response = get_bookings(app, Some(token), "09162000", query).await;
    assert_eq!(response.status(), 200);
    Ok(response.bytes().await?.to_vec())
}

/// Two fees paid through the simulator, the second partly refunded: their ids and the refund's.
pub(crate) async fn two_fees(app: &TestApp) -> anyhow::Result<(String, String, String)> {
    let first = pay(app, "GEB-1", "12.00", json!({ "Kostenstelle": "Bürgeramt Süd", "Aktenzeichen": "Ä-17" })).await?;
    let second = pay(app, "GEB-2", "20.50", json!({ "Haushaltsstelle": "1.0100.9999" })).await?;
    let refund_id = refund(app, &second, "5.25").await?;
    Ok((first, second, refund_id))
}

pub async fn fees_paid_through_the_simulator_are_booked_and_listed_as_csv(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let (first, second, refund_id) = two_fees(&app).await?;
    let journals = app.state.db.ledger_journals_of_transaction(&first).await?;
    assert_eq!(journals.iter().map(|j| j.journal_key.clone()).collect::<Vec<_>>(), vec![format!("paid:{first}")]);
    assert!(ledger::check_transaction(&app.state.db, &second).await?.consistent());

    let token = finance_token(&ctx, "09162000")?;
    let response = get_bookings(&app, Some(&token), "09162000", &around_today()).await;
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8; header=present");
    assert!(response.headers()["content-disposition"].to_str()?.contains("bookings-09162000-"));
    let bytes = response.bytes().await?;
    assert!(bytes.starts_with(HEADER.as_bytes()), "no BOM, the header first");
    let text = std::str::from_utf8(&bytes)?;
    let mut reader = csv::ReaderBuilder::new().delimiter(b';').from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    assert_eq!(rows.len(), 3, "{text}");
    let column = |row: &csv::StringRecord, name: &str| {
        let index = pforte::finance::export::CSV_COLUMNS.iter().position(|c| *c == name).expect("column");
        row[index].to_owned()
    };
    assert_eq!(column(&rows[0], "transactionId"), first);
    assert_eq!(column(&rows[0], "bookingType"), "payment");
    assert_eq!(column(&rows[0], "amount"), "12,00");
    assert_eq!(column(&rows[0], "requestId"), "GEB-1");
    assert_eq!(column(&rows[0], "originatorId"), "demo-service");
    assert_eq!(column(&rows[0], "purpose"), "Gebuehr GEB-1");
    assert_eq!(column(&rows[0], "Haushaltsstelle"), "1.0100.1100", "the authority's default");
    assert_eq!(column(&rows[0], "Objektnummer"), "OBJ-0001");
    assert_eq!(column(&rows[0], "bookingData"), "Aktenzeichen=Ä-17, Kostenstelle=Bürgeramt Süd", "umlauts intact");
    assert_eq!(column(&rows[0], "provider"), "sim-pay");
    assert!(!column(&rows[0], "paidAt").is_empty());
    assert_eq!(column(&rows[1], "Haushaltsstelle"), "1.0100.9999", "the service's own value wins");
    assert_eq!(column(&rows[1], "amount"), "20,50");
    assert_eq!((column(&rows[2], "bookingType"), column(&rows[2], "amount")), ("refund".into(), "-5,25".into()));
    assert_eq!(column(&rows[2], "refundId"), refund_id);
    assert_eq!(column(&rows[2], "transactionId"), second);
    app.stop().await
}
backend_test!(fees_paid_through_the_simulator_are_booked_and_listed_as_csv);

pub async fn csv_with_a_decimal_point_and_a_byte_order_mark(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    two_fees(&app).await?;
    let token = finance_token(&ctx, "09162000")?;
    let bytes = body(&app, &token, &format!("{}&decimal=point&bom=true", around_today())).await?;
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF");
    assert!(bytes[3..].starts_with(HEADER.as_bytes()));
    let text = std::str::from_utf8(&bytes[3..])?;
    assert!(text.contains(";12.00;EUR;") && text.contains(";-5.25;EUR;") && !text.contains("12,00"), "{text}");
    assert!(text.contains("Bürgeramt Süd"));
    let comma = body(&app, &token, &format!("{}&decimal=comma&bom=false", around_today())).await?;
    assert!(comma.starts_with(b"journalId;"));
    assert!(std::str::from_utf8(&comma)?.contains(";20,50;EUR;"));
    app.stop().await
}
backend_test!(csv_with_a_decimal_point_and_a_byte_order_mark);

pub async fn json_lists_the_bookings_with_their_booking_data(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let (first, second, refund_id) = two_fees(&app).await?;
    // The refund was a mistake: reversed, it appears as a line of its own with the opposite sign.
    let refund_journal = app.state.db.ledger_journals_of_transaction(&second).await?[1].id;
    let mut tx = app.state.db.begin_write().await?;
    ledger::post_reversal(&mut tx, refund_journal, "refunded in error", Utc::now().timestamp_millis()).await?;
    tx.commit().await?;
    let token = finance_token(&ctx, "09162000")?;
    let response = get_bookings(&app, Some(&token), "09162000", &format!("{}&format=json", around_today())).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    let export: Value = response.json().await?;
    assert_eq!(export["tenant"], "09162000");
    let bookings = export["bookings"].as_array().expect("a list");
    assert_eq!(bookings.len(), 4);
    assert_eq!(bookings[0]["transactionId"], first.as_str());
    assert_eq!(bookings[0]["amount"].to_string(), "12.00", "an exact JSON number");
    assert_eq!(bookings[0]["bookingData"], json!({ "Aktenzeichen": "Ä-17", "Kostenstelle": "Bürgeramt Süd" }));
    assert_eq!(bookings[0]["Haushaltsstelle"], "1.0100.1100");
    assert_eq!(bookings[0]["transactionReference"], "KZ-2026-000001", "the Kassenzeichen the provider reported");
    assert_eq!(bookings[2]["transactionId"], second.as_str());
    assert_eq!(bookings[2]["amount"].to_string(), "-5.25");
    assert_eq!(bookings[2]["refundId"], refund_id.as_str());
    assert_eq!(bookings[3]["bookingType"], "reversal");
    assert_eq!(bookings[3]["amount"].to_string(), "5.25");
    assert_eq!(bookings[3]["reverses"], refund_journal);
    app.stop().await
}
backend_test!(json_lists_the_bookings_with_their_booking_data);

/// The camt.054 entries as (amount, CdtDbtInd, EndToEndId, Ustrd), read back with quick-xml.
fn camt_entries(xml: &[u8]) -> anyhow::Result<(String, Vec<[String; 4]>)> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let (mut path, mut entries, mut namespace) = (Vec::<String>::new(), Vec::new(), String::new());
    let mut entry: [String; 4] = Default::default();
    let mut buffer = Vec::new();
    loop {
        match reader.read_event_into(&mut buffer)? {
            Event::Start(start) => {
                let name = String::from_utf8(start.name().as_ref().to_vec())?;
                if name == "Document" {
                    for attribute in start.attributes() {
                        let attribute = attribute?;
                        if attribute.key.as_ref() == b"xmlns" {
                            namespace = String::from_utf8(attribute.value.to_vec())?;
                        }
                    }
                }
                path.push(name);
            }
            Event::End(_) => {
                let closed = path.pop();
                if closed.as_deref() == Some("Ntry") {
                    entries.push(std::mem::take(&mut entry));
                }
            }
            Event::Text(text) => {
                let text = text.decode()?.into_owned();
                match path.join("/").rsplit_once("Ntry/").map(|(_, inner)| inner) {
                    Some("Amt") => entry[0] = text,
                    Some("CdtDbtInd") => entry[1] = text,
                    Some("NtryDtls/TxDtls/Refs/EndToEndId") => entry[2] = text,
                    Some("NtryDtls/TxDtls/RmtInf/Ustrd") => entry[3] = text,
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buffer.clear();
    }
    anyhow::ensure!(path.is_empty(), "unclosed elements: {path:?}");
    Ok((namespace, entries))
}

pub async fn camt054_is_well_formed_and_carries_the_purpose(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    let (first, second, _) = two_fees(&app).await?;
    let token = finance_token(&ctx, "09162000")?;
    let response = get_bookings(&app, Some(&token), "09162000", &format!("{}&format=camt054", around_today())).await;
    assert_eq!(response.headers()["content-type"], "application/xml");
    let xml = response.bytes().await?;
    let (namespace, entries) = camt_entries(&xml)?;
    assert_eq!(namespace, "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08");
    // EndToEndId holds 35 characters: pforte's end-to-end reference is the id's first 35.
    let (first, second) = (pforte::model::end_to_end_id(&first), pforte::model::end_to_end_id(&second));
    let expected = [
        // The Kassenzeichen stands in RmtInf/Ustrd, where budget systems look for it.
        ["12.00", "CRDT", first, "KZ-2026-000001"],
        ["20.50", "CRDT", second, "KZ-2026-000002"],
        ["5.25", "DBIT", second, "KZ-2026-000002"],
    ];
    assert_eq!(entries, expected.map(|e| e.map(str::to_owned)).to_vec());
    let text = std::str::from_utf8(&xml)?;
    assert!(text.contains("<Nm>Landeshauptstadt München (Demo)</Nm>"), "umlauts intact");
    assert!(text.contains("<MsgId>PFORTE-") && text.contains("<Cd>BOOK</Cd>"));
    app.stop().await
}
backend_test!(camt054_is_well_formed_and_carries_the_purpose);

pub async fn the_same_export_twice_is_byte_identical(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    two_fees(&app).await?;
    let token = finance_token(&ctx, "09162000")?;
    for format in ["csv&bom=true", "json", "camt054"] {
        let query = format!("{}&format={format}", around_today());
        let (first, second) = (body(&app, &token, &query).await?, body(&app, &token, &query).await?);
        assert!(first.len() > 300, "{format}");
        assert_eq!(first, second, "{format}");
    }
    app.stop().await
}
backend_test!(the_same_export_twice_is_byte_identical);

pub async fn a_period_without_bookings_gives_empty_exports(ctx: TestContext) -> TestResult {
    let app = quiet_app(&ctx).await;
    two_fees(&app).await?;
    let token = finance_token(&ctx, "09162000")?;
    let period = "from=2020-01-01&to=2020-01-31";
    assert_eq!(body(&app, &token, period).await?, HEADER.as_bytes());
    let json: Value = serde_json::from_slice(&body(&app, &token, &format!("{period}&format=json")).await?)?;
    assert_eq!(json, json!({ "tenant": "09162000", "from": "2020-01-01", "to": "2020-01-31", "bookings": [] }));
    let xml = body(&app, &token, &format!("{period}&format=camt054")).await?;
    let (_, entries) = camt_entries(&xml)?;
    assert!(entries.is_empty());
    let text = std::str::from_utf8(&xml)?;
    assert!(text.contains("<FrDtTm>2020-01-01T00:00:00+01:00</FrDtTm>"), "{text}");
    assert!(text.contains("<CreDtTm>2020-01-01T00:00:00+01:00</CreDtTm>"), "{text}");
    // Another authority's bookings stay out of this one's export.
    let other = finance_token(&ctx, "03241001")?;
    let response = get_bookings(&app, Some(&other), "03241001", &around_today()).await;
    assert_eq!(response.bytes().await?, HEADER.as_bytes());
    app.stop().await
}
backend_test!(a_period_without_bookings_gives_empty_exports);

/// More rows than several pages, posted at interleaved times, come out complete, in (time, id)
/// order, without a Content-Length (the body is streamed).
pub async fn a_few_thousand_bookings_stream_in_order(ctx: TestContext) -> TestResult {
    const ROWS: i64 = 2_200;
    let app = quiet_app(&ctx).await;
    let request = json!({ "purpose": "Massenbuchung", "items": [{ "bookingData": { "Haushaltsstelle": "1.2" } }] });
    let base = Utc::now().timestamp_millis() - 60_000;
    let mut expected = Vec::new();
    let mut tx = app.state.db.begin_write().await?;
    for n in 0..ROWS {
        let id = format!("bulk-{n:05}");
        let row = payment_row(&app, "09162000", &id, Decimal::new(100 + n, 2), &request.to_string());
        pforte::store::payments::insert(&mut tx, &row).await?;
        // Later rows are partly booked earlier, so time and id order differ.
        let posted_at = base + (n % 7) * 1_000;
        let event = ledger::PaidEvent {
            tenant_id: "09162000",
            transaction_id: &id,
            provider_id: "sim-pay",
            amount: Decimal::new(100 + n, 2),
            posted_at,
        };
        expected.push((posted_at, ledger::post_paid(&mut tx, &event).await?.journal_id()));
    }
    tx.commit().await?;
    expected.sort_unstable();

    let token = finance_token(&ctx, "09162000")?;
    let response = get_bookings(&app, Some(&token), "09162000", &format!("{}&decimal=point", around_today())).await;
    assert_eq!(response.status(), 200);
    assert!(response.content_length().is_none(), "streamed, not buffered");
    let bytes = response.bytes().await?;
    let mut reader = csv::ReaderBuilder::new().delimiter(b';').from_reader(&bytes[..]);
    let ids: Vec<i64> =
        reader.records().map(|r| r.map(|r| r[0].parse::<i64>().unwrap_or_default())).collect::<Result<_, _>>()?;
    assert_eq!(ids, expected.iter().map(|(_, id)| *id).collect::<Vec<_>>());
    let total: Decimal = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(&bytes[..])
        .records()
        .map(|r| Decimal::from_str(&r.map(|r| r[12].to_owned()).unwrap_or_default()).unwrap_or_default())
        .sum();
    assert_eq!(
        total,
        ledger::balance(&app.state.db, "09162000", &ledger::Account::ProviderReceivable("sim-pay".into())).await?
    );
    app.stop().await
}
backend_test!(a_few_thousand_bookings_stream_in_order);
