use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::validate::{check_calculation, MAX_ITEMS};
use super::*;

/// A birth certificate (Geburtsurkunde) for 12.00 EUR, one item booked to a Haushaltsstelle.
const VALID: &str = r#"{
    "requestId": "GEB-2024-000123",
    "requestTimestamp": "2024-05-02T10:15:00+02:00",
    "currency": "EUR",
    "grosAmount": 12.00,
    "purpose": "Geburtsurkunde 000123",
    "description": "Geburtsurkunde, 1 Ausfertigung",
    "redirectUrl": "https://service.example.de/antrag/000123/bezahlt",
    "items": [{
        "id": "1",
        "reference": "GEB-URK",
        "description": "Geburtsurkunde",
        "taxRate": 0,
        "quantity": 1,
        "singleNetAmount": 12.00,
        "singleTaxAmount": 0,
        "totalNetAmount": 12.00,
        "totalTaxAmount": 0,
        "bookingData": { "Haushaltsstelle": "1.3400.110000", "Objektnummer": "4711" }
    }]
}"#;

fn valid() -> Value {
    serde_json::from_str(VALID).expect("the example is JSON")
}

/// A JSON number with exactly this text (serde_json keeps it, arbitrary_precision).
fn num(text: &str) -> Value {
    serde_json::from_str(text).expect("a JSON number")
}

fn parse(body: &Value) -> Result<PaymentRequest, ValidationFailure> {
    parse_request_body(&serde_json::to_vec(body).expect("serialisable"))
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("a decimal")
}

/// The valid example with one field replaced.
fn with(pointer: &str, value: Value) -> Value {
    let mut body = valid();
    *body.pointer_mut(pointer).expect("the field exists in the example") = value;
    body
}

/// The valid example with amount `text` as grosAmount and as the item's net amounts.
fn with_amount(text: &str) -> Value {
    let mut body = with("/grosAmount", num(text));
    body["items"][0]["singleNetAmount"] = num(text);
    body["items"][0]["totalNetAmount"] = num(text);
    body
}

fn refused(body: &Value) -> ValidationFailure {
    match parse(body) {
        Ok(request) => panic!("expected a refusal, got {request:?}"),
        Err(failure) => failure,
    }
}

fn assert_validation_error(body: &Value, field: &str) {
    let failure = refused(body);
    assert_eq!(failure.code, FunctionalCode::ValidationError, "{failure}");
    assert_eq!(failure.field.as_deref(), Some(field), "{failure}");
    assert!(failure.detail.contains(field), "detail names the field: {failure}");
}

#[test]
fn the_example_birth_certificate_request_is_accepted() {
    let request = parse(&valid()).expect("valid");
    assert_eq!(request.request_id.as_str(), "GEB-2024-000123");
    assert_eq!(request.gros_amount.value(), dec("12.00"));
    assert_eq!(request.items[0].booking_data["Haushaltsstelle"], "1.3400.110000");
}

#[test]
fn amounts_are_exact_so_point_one_and_point_two_make_point_three() {
    let mut body = with("/grosAmount", num("0.3"));
    let item = body["items"][0].clone();
    body["items"] = json!([item.clone(), item]);
    for (i, amount) in ["0.1", "0.2"].into_iter().enumerate() {
        body["items"][i]["singleNetAmount"] = num(amount);
        body["items"][i]["totalNetAmount"] = num(amount);
    }
    let request = parse(&body).expect("0.1 + 0.2 equals 0.3 exactly");
    assert_eq!(request.items[0].gross() + request.items[1].gross(), dec("0.3"));
    assert_eq!(request.gros_amount.value(), dec("0.30"));
}

#[test]
fn twelve_thirty_is_read_exactly_from_the_json_text() {
    let request = parse(&with_amount("12.30")).expect("valid");
    assert_eq!(request.gros_amount.value(), dec("12.30"));
    assert_eq!(request.gros_amount.value().to_string(), "12.30");
}

#[test]
fn gros_amount_with_three_decimals_is_a_validation_error() {
    assert_validation_error(&with_amount("12.345"), "grosAmount");
}

#[test]
fn a_third_decimal_that_is_zero_is_accepted_as_cents() {
    let request = parse(&with_amount("12.300")).expect("12.300 is 12.30");
    assert_eq!(request.gros_amount.value(), dec("12.30"));
}

#[test]
fn gros_amount_of_zero_is_a_validation_error() {
    assert_validation_error(&with_amount("0"), "grosAmount");
}

#[test]
fn negative_gros_amount_is_a_validation_error() {
    assert_validation_error(&with_amount("-12.00"), "grosAmount");
}

#[test]
fn gros_amount_over_999999_is_a_validation_error() {
    assert_validation_error(&with_amount("999999.01"), "grosAmount");
    assert_validation_error(&with_amount("1000000"), "grosAmount");
}

#[test]
fn gros_amount_of_exactly_999999_00_is_accepted() {
    let request = parse(&with_amount("999999.00")).expect("the maximum is allowed");
    assert_eq!(request.gros_amount.value(), dec("999999"));
}

#[test]
fn exponent_notation_is_read_exactly_and_then_checked_like_any_amount() {
    let request = parse(&with_amount("1e2")).expect("1e2 is 100");
    assert_eq!(request.gros_amount.value(), dec("100"));
    let request = parse(&with_amount("1.2345e2")).expect("1.2345e2 is 123.45");
    assert_eq!(request.gros_amount.value(), dec("123.45"));
    assert_validation_error(&with_amount("1.2345e1"), "grosAmount");
}

#[test]
fn an_amount_sent_as_a_string_is_a_validation_error_naming_the_field() {
    let failure = refused(&with("/grosAmount", json!("12.00")));
    assert_eq!(failure.code, FunctionalCode::ValidationError);
    assert_eq!(failure.field.as_deref(), Some("grosAmount"));
    assert!(failure.detail.contains("expected a JSON number"), "{failure}");
}

#[test]
fn items_not_adding_up_to_gros_amount_is_a_calculation_error() {
    let failure = refused(&with("/grosAmount", num("12.01")));
    assert_eq!(failure.code, FunctionalCode::CalculationError);
    assert_eq!(failure.field.as_deref(), Some("grosAmount"));
    assert_eq!(failure.code.as_str(), "CALCULATION_ERROR");
}

#[test]
fn quantity_times_single_amount_must_equal_the_item_total() {
    let failure = refused(&with("/items/0/quantity", num("2")));
    assert_eq!(failure.code, FunctionalCode::CalculationError);
    assert_eq!(failure.field.as_deref(), Some("items[0].totalNetAmount"));

    let mut body = with("/items/0/quantity", num("2"));
    body["items"][0]["singleNetAmount"] = num("6.00");
    parse(&body).expect("2 × 6.00 is 12.00");
}

#[test]
fn tax_amounts_count_towards_the_gross_amount() {
    let mut body = with("/grosAmount", num("14.28"));
    body["items"][0]["taxRate"] = num("19");
    body["items"][0]["singleTaxAmount"] = num("2.28");
    body["items"][0]["totalTaxAmount"] = num("2.28");
    parse(&body).expect("12.00 net + 2.28 tax = 14.28");
}

#[test]
fn zero_items_is_a_validation_error() {
    assert_validation_error(&with("/items", json!([])), "items");
}

#[test]
fn ninety_nine_items_are_accepted_and_one_hundred_are_refused() {
    let item = valid()["items"][0].clone();
    let mut body = with("/items", Value::Array(vec![item.clone(); MAX_ITEMS]));
    body["grosAmount"] = num("1188.00");
    parse(&body).expect("99 items are allowed");

    let mut body = with("/items", Value::Array(vec![item; MAX_ITEMS + 1]));
    body["grosAmount"] = num("1200.00");
    assert_validation_error(&body, "items");
}

#[test]
fn item_amounts_may_be_zero_but_not_negative_nor_with_three_decimals() {
    parse(&with("/items/0/totalTaxAmount", num("0.00"))).expect("no VAT on a fee");
    assert_validation_error(&with("/items/0/totalTaxAmount", num("-0.01")), "items[0].totalTaxAmount");
    assert_validation_error(&with("/items/0/singleNetAmount", num("12.001")), "items[0].singleNetAmount");
}

#[test]
fn an_item_without_total_net_amount_is_a_validation_error() {
    let mut body = valid();
    body["items"][0].as_object_mut().expect("an object").remove("totalNetAmount");
    assert_validation_error(&body, "items[0].totalNetAmount");
}

#[test]
fn quantity_must_be_a_positive_whole_number() {
    assert_validation_error(&with("/items/0/quantity", num("0")), "items[0].quantity");
    assert_validation_error(&with("/items/0/quantity", num("1.5")), "items[0].quantity");
    assert_validation_error(&with("/items/0/quantity", num("-1")), "items[0].quantity");
    let request = parse(&with("/items/0/quantity", num("1.0"))).expect("1.0 is the number 1");
    assert_eq!(request.items[0].quantity, Some(1));
}

#[test]
fn tax_rate_must_be_a_percentage_from_0_to_100() {
    assert_validation_error(&with("/items/0/taxRate", num("100.5")), "items[0].taxRate");
    assert_validation_error(&with("/items/0/taxRate", num("-7")), "items[0].taxRate");
    parse(&with("/items/0/taxRate", num("5.5"))).expect("5.5 % is a rate");
}

#[test]
fn request_id_is_1_to_36_word_characters_or_hyphens() {
    parse(&with("/requestId", json!("a".repeat(36)))).expect("36 characters are allowed");
    parse(&with("/requestId", json!("A_z-09"))).expect("word characters and hyphens");
    assert_validation_error(&with("/requestId", json!("a".repeat(37))), "requestId");
    assert_validation_error(&with("/requestId", json!("")), "requestId");
    assert_validation_error(&with("/requestId", json!("GEB 123")), "requestId");
    assert_validation_error(&with("/requestId", json!("Gebühr-1")), "requestId");
}

#[test]
fn a_missing_field_is_a_validation_error_naming_it() {
    let mut body = valid();
    body.as_object_mut().expect("an object").remove("requestId");
    let failure = refused(&body);
    assert_eq!(failure.field.as_deref(), Some("requestId"));
    assert!(failure.detail.contains("requestId is missing"), "{failure}");
}

#[test]
fn request_timestamp_must_be_an_iso_8601_date_time_with_offset() {
    parse(&with("/requestTimestamp", json!("2024-05-02T08:15:00Z"))).expect("UTC");
    parse(&with("/requestTimestamp", json!("2024-05-02T10:15:00.123+02:00"))).expect("fractional seconds");
    assert_validation_error(&with("/requestTimestamp", json!("02.05.2024 10:15")), "requestTimestamp");
    assert_validation_error(&with("/requestTimestamp", json!("2024-05-02")), "requestTimestamp");
    assert_validation_error(&with("/requestTimestamp", json!("2024-13-02T10:15:00Z")), "requestTimestamp");
}

#[test]
fn a_timestamp_without_offset_is_refused_rather_than_guessed() {
    assert_validation_error(&with("/requestTimestamp", json!("2024-05-02T10:15:00")), "requestTimestamp");
}

#[test]
fn currency_other_than_eur_is_a_validation_error() {
    assert_validation_error(&with("/currency", json!("USD")), "currency");
    assert_validation_error(&with("/currency", json!("eur")), "currency");
}

#[test]
fn purpose_longer_than_27_characters_is_refused() {
    parse(&with("/purpose", json!("a".repeat(27)))).expect("27 characters are allowed");
    assert_validation_error(&with("/purpose", json!("a".repeat(28))), "purpose");
    assert_validation_error(&with("/purpose", json!("")), "purpose");
}

#[test]
fn purpose_accepts_ascii_letters_digits_spaces_and_hyphens() {
    parse(&with("/purpose", json!("Gebuehr Az-2024 4711_b"))).expect("the standard's character set");
}

#[test]
fn purpose_refuses_punctuation_markup_and_umlauts() {
    for purpose in ["Gebühr 1", "a;b", "<script>", "Straße", "a\tb", "a.b"] {
        assert_validation_error(&with("/purpose", json!(purpose)), "purpose");
    }
}

#[test]
fn description_longer_than_250_characters_is_refused() {
    parse(&with("/description", json!("ä".repeat(250)))).expect("250 characters, not bytes");
    assert_validation_error(&with("/description", json!("a".repeat(251))), "description");
}

#[test]
fn redirect_url_must_be_an_absolute_http_url_of_at_most_2082_characters() {
    parse(&with("/redirectUrl", json!("http://localhost:8080/back"))).expect("http for development");
    for url in ["/antrag/bezahlt", "javascript:alert(1)", "ftp://example.de/x", "https://", "not a url"] {
        assert_validation_error(&with("/redirectUrl", json!(url)), "redirectUrl");
    }
    let long = format!("https://service.example.de/{}", "a".repeat(2082));
    assert_validation_error(&with("/redirectUrl", json!(long)), "redirectUrl");
}

#[test]
fn a_body_that_is_not_json_is_a_validation_error() {
    for body in [&b"requestId=1&grosAmount=12"[..], b"", b"{\"requestId\": ", b"{} trailing"] {
        let failure = parse_request_body(body).expect_err("not JSON");
        assert_eq!(failure.code, FunctionalCode::ValidationError);
        assert!(failure.detail.contains("not valid JSON"), "{failure}");
    }
}

#[test]
fn a_body_that_is_json_but_not_an_object_is_a_validation_error() {
    // serde would read a struct from an array positionally; the standard's body is an object.
    let positional = serde_json::to_vec(&json!(["GEB-1", "2024-05-02T10:15:00Z", "EUR", 12])).expect("json");
    for body in [&b"[1, 2]"[..], b" 12.00", b"\"GEB-1\"", &positional] {
        let failure = parse_request_body(body).expect_err("not an object");
        assert_eq!(failure.code, FunctionalCode::ValidationError);
        assert!(failure.detail.contains("JSON object"), "{failure}");
    }
}

#[test]
fn a_wrong_type_names_the_field_without_quoting_the_value() {
    let mut body = valid();
    body["requestor"] = json!({ "name": 42, "firstName": "Erika" });
    let failure = refused(&body);
    assert_eq!(failure.field.as_deref(), Some("requestor.name"));
    assert!(failure.detail.contains("expected a string"), "{failure}");
    assert!(!failure.detail.contains("42"), "the value stays out: {failure}");

    let failure = refused(&with("/items", json!("Geburtsurkunde")));
    assert_eq!(failure.field.as_deref(), Some("items"));
    assert!(!failure.detail.contains("Geburtsurkunde"), "{failure}");

    let failure = refused(&with("/items/0/bookingData/Objektnummer", json!(4711)));
    assert_eq!(failure.field.as_deref(), Some("items[0].bookingData.Objektnummer"));
}

#[test]
fn every_field_problem_is_listed_in_one_detail() {
    let mut body = with("/currency", json!("USD"));
    body["purpose"] = json!("a;b");
    body["items"][0]["quantity"] = num("0");
    let failure = refused(&body);
    assert_eq!(failure.field.as_deref(), Some("currency"), "the first field at fault");
    for field in ["currency", "purpose", "items[0].quantity"] {
        assert!(failure.detail.contains(field), "{field} missing from: {failure}");
    }
}

#[test]
fn unknown_fields_are_tolerated_and_not_echoed() {
    let mut body = valid();
    body["x-vendorExtension"] = json!({"version": 2});
    body["items"][0]["futureField"] = json!({"a": 1});
    let request = parse(&body).expect("extensions are ignored");
    let echoed = serde_json::to_string(&request).expect("serialisable");
    assert!(!echoed.contains("vendorExtension") && !echoed.contains("futureField"));
}

#[test]
fn blank_booking_data_values_are_refused() {
    assert_validation_error(&with("/items/0/bookingData/Objektnummer", json!(" ")), "items[0].bookingData");
}

#[test]
fn booking_defaults_fill_missing_keys_without_overriding_sent_ones() {
    let mut request = parse(&valid()).expect("valid");
    let defaults = BTreeMap::from([
        ("Haushaltsstelle".to_owned(), "9.9999.999999".to_owned()),
        ("Bewirtschafter".to_owned(), "0815".to_owned()),
    ]);
    merge_booking_defaults(&mut request, &defaults);
    let booking = &request.items[0].booking_data;
    assert_eq!(booking["Haushaltsstelle"], "1.3400.110000", "the service's own value wins");
    assert_eq!(booking["Bewirtschafter"], "0815");
    assert_eq!(booking["Objektnummer"], "4711");
}

#[test]
fn a_required_booking_key_missing_after_merging_is_booking_data_missing() {
    let mut body = valid();
    body["items"][0]["bookingData"] = json!({ "Objektnummer": "4711" });
    let mut request = parse(&body).expect("valid");
    let required = vec!["Haushaltsstelle".to_owned()];

    let failure = check_required_booking_keys(&request, &required).expect_err("no Haushaltsstelle");
    assert_eq!(failure.code, FunctionalCode::BookingDataMissing);
    assert_eq!(failure.field.as_deref(), Some("items[0].bookingData"));
    assert!(failure.detail.contains("Haushaltsstelle"), "{failure}");

    merge_booking_defaults(&mut request, &BTreeMap::from([("Haushaltsstelle".to_owned(), "1.1".to_owned())]));
    check_required_booking_keys(&request, &required).expect("the default fills it");
}

#[test]
fn round_trip_keeps_the_standards_field_names_and_exact_numbers() {
    let mut body = with_amount("12.3");
    body["requestor"] = json!({ "name": "Mustermann", "firstName": "Erika", "isOrganization": false });
    let request = parse(&body).expect("valid");
    let transaction =
        PaymentTransaction { payment_request: request, payment_information: information(Status::Initial) };
    let text = serde_json::to_string(&transaction).expect("serialisable");
    for name in [
        "\"paymentRequest\"",
        "\"requestId\"",
        "\"requestTimestamp\":\"2024-05-02T10:15:00+02:00\"",
        "\"currency\":\"EUR\"",
        "\"grosAmount\":12.30,",
        "\"redirectUrl\"",
        "\"singleNetAmount\":12.30,",
        "\"totalTaxAmount\":0.00,",
        "\"taxRate\":0,",
        "\"quantity\":1,",
        "\"bookingData\":{\"Haushaltsstelle\"",
        "\"firstName\":\"Erika\"",
        "\"isOrganization\":false",
        "\"paymentInformation\"",
        "\"transactionRedirectUrl\"",
        "\"status\":\"INITIAL\"",
    ] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
    assert!(!text.contains("organizationName"), "absent optional fields are omitted: {text}");

    // Read back, the amounts are the same exact decimals.
    let again = parse_request_body(&serde_json::to_vec(&transaction.payment_request).expect("json")).expect("valid");
    assert_eq!(again, transaction.payment_request);
}

#[test]
fn status_is_spelled_exactly_as_the_standard_with_payed() {
    let spelled: Vec<String> = [Status::Initial, Status::Payed, Status::Canceled, Status::Failed]
        .iter()
        .map(|s| serde_json::to_string(s).expect("json"))
        .collect();
    assert_eq!(spelled, ["\"INITIAL\"", "\"PAYED\"", "\"CANCELED\"", "\"FAILED\""]);
    assert_eq!(serde_json::from_str::<Status>("\"PAYED\"").expect("known"), Status::Payed);
    assert!(serde_json::from_str::<Status>("\"PAID\"").is_err());
    assert_eq!(Status::Payed.as_str(), "PAYED");
}

fn information(status: Status) -> PaymentInformation {
    PaymentInformation {
        transaction_url: "https://pforte.example.de/paymenttransaction/svc/09162000/tx1".to_owned(),
        transaction_redirect_url: Some("https://pay.example.de/page/tx1".to_owned()),
        transaction_id: "tx1".to_owned(),
        transaction_reference: None,
        transaction_timestamp: None,
        payment_method: None,
        payment_method_detail: None,
        status,
        status_detail: None,
    }
}

#[test]
fn the_pay_page_url_is_shown_only_while_the_status_is_initial() {
    let shown = serde_json::to_value(information(Status::Initial)).expect("json");
    assert!(shown.get("transactionRedirectUrl").is_some());
    let paid = serde_json::to_value(information(Status::Payed)).expect("json");
    assert!(paid.get("transactionRedirectUrl").is_none());
    assert!(paid.get("transactionReference").is_none(), "absent fields are omitted");
}

#[test]
fn an_unlisted_payment_method_goes_out_as_other_with_its_name_in_the_detail() {
    let from_provider = r#"{"transactionUrl":"u","transactionId":"t","status":"PAYED","paymentMethod":"APPLEPAY"}"#;
    let read: PaymentInformation = serde_json::from_str(from_provider).expect("tolerant");
    assert_eq!(read.payment_method, Some(PaymentMethod::Unlisted("APPLEPAY".to_owned())));
    let written = serde_json::to_value(&read).expect("json");
    assert_eq!(written["paymentMethod"], "OTHER");
    assert_eq!(written["paymentMethodDetail"], "APPLEPAY");
    for known in ["CREDITCARD", "PAYPAL", "GIROPAY", "PAYDIRECT", "OTHER"] {
        assert_eq!(PaymentMethod::parse(known).as_str(), known);
    }
}

#[test]
fn functional_codes_have_the_standards_spellings() {
    let codes = [
        (FunctionalCode::NoValidOriginatorOrEndpoint, "NO_VALID_ORIGINATOR_OR_ENDPOINT"),
        (FunctionalCode::PaymentExists, "PAYMENT_EXISTS"),
        (FunctionalCode::CalculationError, "CALCULATION_ERROR"),
        (FunctionalCode::BookingDataMissing, "BOOKING_DATA_MISSING"),
        (FunctionalCode::ValidationError, "VALIDATION_ERROR"),
        (FunctionalCode::Forbidden, "FORBIDDEN"),
        (FunctionalCode::Unspecified, "UNSPECIFIED"),
    ];
    for (code, spelling) in codes {
        assert_eq!(code.as_str(), spelling);
        assert_eq!(FunctionalCode::parse(spelling), Some(code));
        assert_eq!(serde_json::to_string(&code).expect("json"), format!("\"{spelling}\""));
    }
    assert_eq!(
        FunctionalCode::parse("NO_VALID_ORIGINATOR_OR_DESTINATION"),
        Some(FunctionalCode::NoValidOriginatorOrEndpoint)
    );
}

#[test]
fn path_ids_follow_the_request_id_rule() {
    assert_eq!(parse_path_id("endPointId", "09162000").expect("an AGS").as_str(), "09162000");
    let failure = parse_path_id("originatorId", "../etc").expect_err("not an id");
    assert_eq!(failure.code, FunctionalCode::ValidationError);
    assert_eq!(failure.field.as_deref(), Some("originatorId"));
    assert!(parse_path_id("originatorId", &"a".repeat(37)).is_err());
}

#[test]
fn calculation_is_rechecked_on_a_changed_request() {
    let mut request = parse(&valid()).expect("valid");
    request.items[0].total_net_amount = ItemAmount::parse(dec("11.99")).expect("an amount");
    assert_eq!(check_calculation(&request).expect_err("no longer adds up").code, FunctionalCode::CalculationError);
}

#[test]
fn json_values_elsewhere_in_pforte_keep_numbers_exact_too() {
    // serde_json's arbitrary_precision is crate-wide: a Value keeps the text of a number.
    let value: Value = serde_json::from_str(r#"{"a":0.1,"b":12.30,"c":7}"#).expect("json");
    assert_eq!(value.to_string(), r#"{"a":0.1,"b":12.30,"c":7}"#);
    assert_eq!(value["c"].as_u64(), Some(7));
    assert_eq!(value["a"].as_f64(), Some(0.1));
}

#[test]
fn only_failures_outside_the_request_leave_a_retry_under_the_same_key_open() {
    use crate::payment::{ErrorKind, PaymentError};
    assert!(PaymentError::unavailable("provider down").leaves_retry_open());
    assert!(PaymentError::internal(&"storage").leaves_retry_open());
    assert!(PaymentError::new(ErrorKind::ProviderRefused, FunctionalCode::Unspecified, "d").leaves_retry_open());
    for kept in [
        PaymentError::rejected(FunctionalCode::ValidationError, "d"),
        PaymentError::new(ErrorKind::ProviderRefused, FunctionalCode::CalculationError, "d"),
        PaymentError::not_found(),
        PaymentError::wrong_status("d"),
        PaymentError::new(ErrorKind::InProgress, FunctionalCode::Unspecified, "d"),
    ] {
        assert!(!kept.leaves_retry_open(), "{kept}");
    }
}
