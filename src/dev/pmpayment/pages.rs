//! The pmPayment peer's pay page, in German, built like the XBezahldienste simulator's: no scripts,
//! no external assets, every control labelled.

use rust_decimal::Decimal;

use super::Transaction;
use crate::dev::escape;
use crate::dev::xbezahldienste::pages::{document, error_notice, euro, pay_form};

/// The pay page of an open transaction; `message` is an error to show above the form.
pub(super) fn pay(transaction: &Transaction, action: &str, message: Option<&str>) -> String {
    let error = error_notice(message);
    let body = format!(
        r#"<p><strong>Testumgebung (pmPayment):</strong> Hier wird nichts wirklich bezahlt. Es fließt kein Geld.</p>
{error}<dl>
<dt>Behörde (ags)</dt><dd><code>{ags}</code></dd>
<dt>Verfahren (procedure)</dt><dd><code>{procedure}</code></dd>
<dt>Verwendungszweck</dt><dd>{desc}</dd>
<dt>Betrag</dt><dd><strong>{amount}</strong></dd>
<dt>Buchungsdaten</dt><dd><code>{booking}</code></dd>
</dl>
{form}"#,
        ags = escape(&transaction.ags),
        procedure = escape(&transaction.procedure),
        desc = escape(&transaction.desc),
        amount = euro(Decimal::new(transaction.amount_cents, 2)),
        booking = escape(&transaction.accounting_record),
        form = pay_form(action),
    );
    document("Bezahlen", &body)
}
