//! The payment simulator's pages, in German: no scripts, no external assets, only pforte's
//! stylesheet, every control labelled.

use rust_decimal::Decimal;

use super::{PageView, PaymentMethod, Status, OFFERED_METHODS};
use crate::dev::escape;

const DISPLAY_NAME: &str = "Bezahl-Simulator";

/// The pay page of an open transaction; `message` is an error to show above the form.
pub(crate) fn pay(view: &PageView, action: &str, message: Option<&str>) -> String {
    let request = &view.request;
    let error = error_notice(message);
    let description = request
        .description
        .as_deref()
        .map(|text| format!("<dt>Beschreibung</dt><dd>{}</dd>\n", escape(text)))
        .unwrap_or_default();
    let items: String = request
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let label = item
                .description
                .as_deref()
                .or(item.reference.as_deref())
                .or(item.id.as_deref())
                .map_or_else(|| format!("Position {}", index + 1), escape);
            format!(
                "<tr><td>{label}</td><td>{quantity}</td><td>{amount}</td></tr>\n",
                quantity = item.quantity.unwrap_or(1),
                amount = euro(item.gross),
            )
        })
        .collect();
    let body = format!(
        r#"<p><strong>Testumgebung:</strong> Hier wird nichts wirklich bezahlt. Es fließt kein Geld.</p>
{error}<dl>
<dt>Behörde (endPointId)</dt><dd><code>{endpoint}</code></dd>
<dt>Online-Dienst (originatorId)</dt><dd><code>{originator}</code></dd>
<dt>Verwendungszweck</dt><dd>{purpose}</dd>
{description}<dt>Betrag</dt><dd><strong>{amount}</strong></dd>
</dl>
<table>
<caption>Positionen</caption>
<thead><tr><th scope="col">Position</th><th scope="col">Menge</th><th scope="col">Betrag (brutto)</th></tr></thead>
<tbody>
{items}</tbody>
</table>
{form}"#,
        endpoint = escape(&view.endpoint_id),
        originator = escape(&view.originator_id),
        purpose = escape(&request.purpose),
        amount = euro(request.gros_amount),
        form = pay_form(action),
    );
    document("Bezahlen", &body)
}

/// An error to show above a pay form, if there is one.
pub(crate) fn error_notice(message: Option<&str>) -> String {
    message
        .map(|message| format!("<div class=\"error\" role=\"alert\"><p>{}</p></div>\n", escape(message)))
        .unwrap_or_default()
}

/// The form a citizen pays, cancels or fails with (the simulators' pay pages share it), posting to
/// `action`.
pub(crate) fn pay_form(action: &str) -> String {
    let methods: String = OFFERED_METHODS
        .iter()
        .map(|method| format!("<option value=\"{}\">{}</option>\n", method.as_str(), method_label(*method)))
        .collect();
    format!(
        r#"<form method="post" action="{action}">
<p>
<label for="method">Zahlungsart</label>
<select name="method" id="method">
{methods}</select>
</p>
<p>
<button type="submit" name="action" value="pay">Bezahlen</button>
<button type="submit" name="action" value="cancel">Abbrechen</button>
<button type="submit" name="action" value="fail">Fehlschlag simulieren</button>
</p>
</form>"#,
        action = escape(action),
    )
}

/// The answer for a transaction whose status is already final.
pub(crate) fn already_final(status: Status) -> String {
    let outcome = match status {
        Status::Payed => "bezahlt",
        Status::Canceled => "abgebrochen",
        Status::Failed => "fehlgeschlagen",
        Status::Initial => "offen",
    };
    let body = format!(
        "<p>Diese Zahlung ist bereits abgeschlossen (Status: {outcome}, <code>{}</code>). \
         Sie kann nicht noch einmal entschieden werden.</p>\n\
         <p>Bitte kehren Sie zum Online-Dienst zurück.</p>",
        status.as_str()
    );
    document("Zahlung bereits abgeschlossen", &body)
}

/// The decision was taken, but the redirectUrl cannot be sent as a header: a link instead.
pub(crate) fn done(redirect_url: &str) -> String {
    let body = format!(
        "<p>Ihre Entscheidung wurde gespeichert.</p>\n<p><a href=\"{}\">Zurück zum Online-Dienst</a></p>",
        escape(redirect_url)
    );
    document("Zahlung abgeschlossen", &body)
}

pub(crate) fn unknown() -> String {
    document(
        "Zahlung nicht gefunden",
        "<p>Diese Zahlung gibt es nicht oder nicht mehr (der Simulator vergisst Zahlungen nach 24 Stunden).</p>",
    )
}

pub(crate) fn method_label(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::CreditCard => "Kreditkarte",
        PaymentMethod::PayPal => "PayPal",
        PaymentMethod::Giropay => "giropay",
        PaymentMethod::Paydirect => "paydirekt",
    }
}

/// `1234.5` → `1.234,50 €`.
pub(crate) fn euro(amount: Decimal) -> String {
    let text = format!("{:.2}", amount.round_dp(2));
    let (sign, text) = text.strip_prefix('-').map_or(("", text.as_str()), |rest| ("-", rest));
    let (whole, cents) = text.split_once('.').unwrap_or((text, "00"));
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped},{cents} €")
}

pub(crate) fn document(heading: &str, body: &str) -> String {
    let body =
        format!("<p><strong>{DISPLAY_NAME}</strong></p>\n<h1>{heading}</h1>\n{body}", heading = escape(heading),);
    crate::dev::document(&format!("{heading} – {DISPLAY_NAME}"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_the_german_way() {
        assert_eq!(euro(Decimal::new(1200, 2)), "12,00 €");
        assert_eq!(euro(Decimal::new(5, 1)), "0,50 €");
        assert_eq!(euro(Decimal::new(123_456_789, 2)), "1.234.567,89 €");
        assert_eq!(euro(Decimal::new(999_999, 0)), "999.999,00 €");
    }

    #[test]
    fn the_final_page_names_the_status() {
        let page = already_final(Status::Canceled);
        assert!(page.contains("lang=\"de\"") && page.contains("CANCELED"));
    }
}
