//! The pmPayment peer's pay page, in German, built like the XBezahldienste simulator's: no scripts,
//! no external assets, every control labelled.

use rust_decimal::Decimal;

use super::Transaction;
use crate::dev::escape;
use crate::dev::xbezahldienste::pages::{document, euro, method_label};
use crate::dev::xbezahldienste::OFFERED_METHODS;

/// The pay page of an open transaction; `message` is an error to show above the form.
pub(super) fn pay(transaction: &Transaction, action: &str, message: Option<&str>) -> String {
    let error = message
        .map(|message| format!("<div class=\"error\" role=\"alert\"><p>{}</p></div>\n", escape(message)))
        .unwrap_or_default();
    let methods: String = OFFERED_METHODS
        .iter()
        .map(|method| format!("<option value=\"{}\">{}</option>\n", method.as_str(), method_label(*method)))
        .collect();
    let body = format!(
        r#"<p><strong>Testumgebung (pmPayment):</strong> Hier wird nichts wirklich bezahlt. Es fließt kein Geld.</p>
{error}<dl>
<dt>Behörde (ags)</dt><dd><code>{ags}</code></dd>
<dt>Verfahren (procedure)</dt><dd><code>{procedure}</code></dd>
<dt>Verwendungszweck</dt><dd>{desc}</dd>
<dt>Betrag</dt><dd><strong>{amount}</strong></dd>
<dt>Buchungsdaten</dt><dd><code>{booking}</code></dd>
</dl>
<form method="post" action="{action}">
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
        ags = escape(&transaction.ags),
        procedure = escape(&transaction.procedure),
        desc = escape(&transaction.desc),
        amount = euro(Decimal::new(transaction.amount_cents, 2)),
        booking = escape(&transaction.accounting_record),
        action = escape(action),
    );
    document("Bezahlen", &body)
}
