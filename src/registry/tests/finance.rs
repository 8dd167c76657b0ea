//! The registry's finance parts: a provider's `[settlement]` section and a tenant's `[finance]` table.

use tempfile::TempDir;
use url::Url;

use super::super::*;

const PROVIDER: &str = r#"
kind = "xbezahldienste"
display_name = "Test payments"
base_url = "https://pay.example.org/api"

[auth]
method = "none"
"#;

const SETTLEMENT: &str = r#"
[settlement]
delimiter = ";"
decimal_separator = "comma"
date_format = "%d.%m.%Y"

[settlement.columns]
transaction = "Transaktion"
gross = "Brutto"
fee = "Gebühr"
payout_reference = "Auszahlung"
booked_on = "Datum"
"#;

const TENANT: &str = r#"
display_name = "Test town"

[payment]
provider = "pay"
"#;

/// A staff identity provider that maps a `groups` claim.
const STAFF_IDP: &str = r#"
kind = "oidc"
display_name = "Staff directory"
account_type = "person"
issuer = "https://login.example.org"
client_id = "pforte"
scopes = ["openid", "groups"]

[client_auth]
method = "client_secret_basic"
secret = "plain:staff-secret"

[claims]
groups = "groups"

[levels]
mfa = "substantial"
"#;

/// Loads a registry of one payment provider, the staff identity provider and one tenant; the error is every problem as `file: key: reason`.
fn load(provider: &str, tenant: &str) -> Result<Registry, String> {
    let dir = TempDir::new().map_err(|e| e.to_string())?;
    let write = |relative: &str, text: &str| -> Result<(), String> {
        let path = dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap_or(dir.path())).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| e.to_string())
    };
    write("providers/payment/pay.toml", provider)?;
    write("providers/identity/staff.toml", STAFF_IDP)?;
    write("tenants/12345678.toml", tenant)?;
    std::fs::create_dir_all(dir.path().join("clients")).map_err(|e| e.to_string())?;
    let settings = RegistrySettings {
        providers: dir.path().join("providers"),
        clients: dir.path().join("clients"),
        tenants: dir.path().join("tenants"),
    };
    let url = Url::parse("http://localhost:8080").map_err(|e| e.to_string())?;
    Registry::load(&settings, &url, true).map_err(|problems| problems.to_string())
}

fn problems(provider: &str, tenant: &str) -> String {
    match load(provider, tenant) {
        Ok(_) => "the load succeeded".to_owned(),
        Err(problems) => problems,
    }
}

#[test]
fn a_settlement_section_is_read_with_its_defaults() -> Result<(), String> {
    let registry = load(&format!("{PROVIDER}{SETTLEMENT}"), TENANT)?;
    let format = registry.payment_provider("pay").and_then(|p| p.settlement.clone()).ok_or("no format")?;
    assert_eq!(format.delimiter, b';');
    assert_eq!(format.decimal_separator, DecimalSeparator::Comma);
    assert!(format.header, "a header row is the default");
    assert_eq!(format.columns.fee, Column::Name("Gebühr".into()));
    assert_eq!(format.columns.kind, None);
    Ok(())
}

#[test]
fn a_provider_without_a_settlement_section_has_no_format() -> Result<(), String> {
    let registry = load(PROVIDER, TENANT)?;
    assert!(registry.payment_provider("pay").is_some_and(|p| p.settlement.is_none()));
    Ok(())
}

#[test]
fn a_missing_column_mapping_names_the_key() {
    let text = problems(&format!("{PROVIDER}{}", SETTLEMENT.replace("fee = \"Gebühr\"\n", "")), TENANT);
    assert!(text.contains("pay.toml") && text.contains("settlement.columns.fee"), "{text}");
}

#[test]
fn a_long_delimiter_an_unknown_separator_and_another_encoding_are_refused() {
    let delimiter = problems(&format!("{PROVIDER}{}", SETTLEMENT.replace("\";\"", "\";;\"")), TENANT);
    assert!(delimiter.contains("settlement.delimiter"), "{delimiter}");
    let separator = problems(&format!("{PROVIDER}{}", SETTLEMENT.replace("\"comma\"", "\"dot\"")), TENANT);
    assert!(separator.contains("settlement.decimal_separator"), "{separator}");
    let encoding = problems(
        &format!("{PROVIDER}{SETTLEMENT}").replace("[settlement]\n", "[settlement]\nencoding = \"latin1\"\n"),
        TENANT,
    );
    assert!(encoding.contains("settlement.encoding") && encoding.contains("only utf-8"), "{encoding}");
}

#[test]
fn a_date_format_without_a_year_or_with_a_time_is_refused() {
    for bad in ["%d.%m.", "%Y-%m-%d %H:%M", "%Q"] {
        let text = problems(&format!("{PROVIDER}{}", SETTLEMENT.replace("%d.%m.%Y", bad)), TENANT);
        assert!(text.contains("settlement.date_format"), "{bad}: {text}");
    }
}

#[test]
fn column_names_need_a_header_row_and_one_column_serves_one_field() {
    let headerless = problems(
        &format!("{PROVIDER}{}", SETTLEMENT.replace("[settlement]\n", "[settlement]\nheader = false\n")),
        TENANT,
    );
    assert!(
        headerless.contains("settlement.columns.transaction") && headerless.contains("by position"),
        "{headerless}"
    );
    let twice = problems(&format!("{PROVIDER}{}", SETTLEMENT.replace("\"Gebühr\"", "\"Brutto\"")), TENANT);
    assert!(twice.contains("settlement.columns.fee") && twice.contains("same column"), "{twice}");
}

#[test]
fn positions_work_without_a_header_row() -> Result<(), String> {
    let positional = SETTLEMENT
        .replace("[settlement]\n", "[settlement]\nheader = false\n")
        .replace("\"Transaktion\"", "1")
        .replace("\"Brutto\"", "2")
        .replace("\"Gebühr\"", "3")
        .replace("\"Auszahlung\"", "4")
        .replace("\"Datum\"", "5");
    let registry = load(&format!("{PROVIDER}{positional}"), TENANT)?;
    let format = registry.payment_provider("pay").and_then(|p| p.settlement.clone()).ok_or("no format")?;
    assert_eq!(format.columns.booked_on, Column::Position(5));
    assert!(problems(&format!("{PROVIDER}{}", positional.replace("= 1", "= 0")), TENANT).contains("start at 1"));
    Ok(())
}

#[test]
fn a_kind_column_needs_its_values_and_values_need_the_column() -> Result<(), String> {
    let with_kind = format!("{PROVIDER}{SETTLEMENT}kind = \"Art\"\n");
    assert!(problems(&with_kind, TENANT).contains("settlement.kinds"));
    let mapped = format!("{with_kind}\n[settlement.kinds]\nZahlung = \"payment\"\nErstattung = \"refund\"\n");
    let registry = load(&mapped, TENANT)?;
    let format = registry.payment_provider("pay").and_then(|p| p.settlement.clone()).ok_or("no format")?;
    assert_eq!(format.kinds.get("Erstattung"), Some(&SettlementKind::Refund));
    let unused = format!("{PROVIDER}{SETTLEMENT}\n[settlement.kinds]\nZahlung = \"payment\"\n");
    assert!(problems(&unused, TENANT).contains("is not used without settlement.columns.kind"));
    let unknown = mapped.replace("\"refund\"", "\"chargeback\"");
    assert!(problems(&unknown, TENANT).contains("settlement.kinds"));
    Ok(())
}

#[test]
fn a_bank_iban_is_kept_in_electronic_form() -> Result<(), String> {
    let registry = load(PROVIDER, &format!("{TENANT}\n[finance]\nbank_iban = \"DE89 3704 0044 0532 0130 00\"\n"))?;
    let tenant = registry.tenant("12345678").ok_or("no tenant")?;
    let iban = tenant.finance.bank_iban.as_ref().map(|i| iban::IbanLike::electronic_str(i).to_owned());
    assert_eq!(iban.as_deref(), Some("DE89370400440532013000"));
    Ok(())
}

#[test]
fn a_bank_iban_with_a_wrong_check_digit_is_refused() {
    let text = problems(PROVIDER, &format!("{TENANT}\n[finance]\nbank_iban = \"DE88 3704 0044 0532 0130 00\"\n"));
    assert!(
        text.contains("12345678.toml") && text.contains("finance.bank_iban") && text.contains("checksum"),
        "{text}"
    );
}

#[test]
fn a_tenant_without_a_finance_table_has_no_bank_account() -> Result<(), String> {
    let registry = load(PROVIDER, TENANT)?;
    assert!(registry.tenant("12345678").is_some_and(|t| t.finance.bank_iban.is_none()));
    Ok(())
}

#[test]
fn a_tenants_staff_access_names_its_provider_claim_and_value() -> Result<(), String> {
    let staff = "\n[finance.staff]\nprovider = \"staff\"\nclaim = \"groups\"\nvalue = \"kasse\"\n";
    let registry = load(PROVIDER, &format!("{TENANT}{staff}"))?;
    let access = registry.tenant("12345678").and_then(|t| t.finance.staff.clone()).ok_or("no staff access")?;
    assert_eq!((access.provider.as_str(), access.claim.as_str(), access.value.as_str()), ("staff", "groups", "kasse"));
    assert!(load(PROVIDER, TENANT)?.tenant("12345678").is_some_and(|t| t.finance.staff.is_none()));
    Ok(())
}

#[test]
fn staff_access_through_an_unknown_provider_or_an_unmapped_claim_is_refused() {
    let unknown = "\n[finance.staff]\nprovider = \"nobody\"\nclaim = \"groups\"\nvalue = \"kasse\"\n";
    let text = problems(PROVIDER, &format!("{TENANT}{unknown}"));
    assert!(text.contains("finance.staff.provider") && text.contains("nobody"), "{text}");
    let unmapped = "\n[finance.staff]\nprovider = \"staff\"\nclaim = \"email\"\nvalue = \"x@example.org\"\n";
    let text = problems(PROVIDER, &format!("{TENANT}{unmapped}"));
    assert!(text.contains("finance.staff.claim") && text.contains("maps no claim onto `email`"), "{text}");
    let empty = "\n[finance.staff]\nprovider = \"staff\"\nclaim = \"groups\"\nvalue = \"\"\n";
    assert!(problems(PROVIDER, &format!("{TENANT}{empty}")).contains("finance.staff.value"));
}
