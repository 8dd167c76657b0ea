//! Pages of the demo service's pay step, in the style of the other demo pages: German with short
//! English subtitles, labelled forms, no scripts; everything from outside escaped.

use super::document;
use super::pay::Received;
use crate::dev::escape;

/// An authority the fee can be paid to.
pub(super) struct Authority {
    pub id: String,
    pub name: String,
    /// The display name of its payment provider.
    pub provider: String,
}

/// The form on the login result page. `key` becomes the payment's Idempotency-Key, so sending the
/// same form twice makes one payment.
pub(super) fn pay_form(key: &str, authorities: &[Authority]) -> String {
    let choices: String = authorities
        .iter()
        .enumerate()
        .map(|(n, a)| {
            let checked = if n == 0 { " checked" } else { "" };
            format!(
                "<div><input type=\"radio\" name=\"authority\" id=\"authority-{id}\" value=\"{id}\"{checked}> \
                 <label for=\"authority-{id}\">{name} <small>(<code>{id}</code>, Zahlung über {provider})</small></label></div>\n",
                id = escape(&a.id),
                name = escape(&a.name),
                provider = escape(&a.provider),
            )
        })
        .collect();
    format!(
        r#"<h2>Gebühr bezahlen <small>(pay the fee)</small></h2>
<form method="post" action="/demo/pay">
<input type="hidden" name="key" value="{key}">
<fieldset>
<legend>Gebühr für eine Geburtsurkunde: <strong>12,00 €</strong> <small>(fee for a birth certificate)</small></legend>
<p>Zuständige Behörde <small>(competent authority)</small>:</p>
{choices}</fieldset>
<p><button type="submit">Gebühr bezahlen <small>(pay)</small></button></p>
</form>"#,
        key = escape(key),
    )
}

/// What the payment page shows about one payment.
pub(super) struct PaymentView<'a> {
    pub transaction_id: &'a str,
    pub authority: &'a str,
    pub status: &'a str,
    pub status_detail: Option<&'a str>,
    /// This page again, to see notifications that arrive later.
    pub reload: &'a str,
    /// The next step once paid (HTML built by the application step), or empty.
    pub next_step: &'a str,
}

/// The payment as pforte's GET reports it, and the notifications the service received about it.
pub(super) fn payment(view: &PaymentView, notifications: &[Received]) -> String {
    let detail = view.status_detail.map(|d| format!(" <small>{}</small>", escape(d))).unwrap_or_default();
    let received = if notifications.is_empty() {
        "<p>Noch keine Benachrichtigung erhalten. <small>(No notification yet; pforte sends one within seconds.)</small></p>".to_owned()
    } else {
        let rows: String = notifications
            .iter()
            .map(|n| {
                format!(
                    "<tr><td><code>{id}</code></td><td><code>{event}</code></td><td><code>{status}</code></td>\
                     <td>gültig <small>(verified)</small></td><td>{time}</td></tr>\n",
                    id = escape(&n.id),
                    event = escape(&n.event),
                    status = escape(&n.status),
                    time = escape(&time(n.received_at)),
                )
            })
            .collect();
        format!(
            r#"<table>
<thead><tr><th scope="col">webhook-id</th><th scope="col">Ereignis <small>(event)</small></th><th scope="col">Status</th><th scope="col">Signatur <small>(signature)</small></th><th scope="col">Empfangen <small>(received, UTC)</small></th></tr></thead>
<tbody>
{rows}</tbody>
</table>"#
        )
    };
    let body = format!(
        r#"<p role="status"><strong>{headline}</strong></p>
<table>
<tbody>
<tr><th scope="row">Status <small>(read by <code>GET</code>)</small></th><td><code>{status}</code> {label}{detail}</td></tr>
<tr><th scope="row">Behörde <small>(authority)</small></th><td>{authority}</td></tr>
<tr><th scope="row">Betrag <small>(amount)</small></th><td>12,00 €</td></tr>
<tr><th scope="row">Transaktion <small>(<code>transactionId</code>)</small></th><td><code>{transaction}</code></td></tr>
</tbody>
</table>
{next_step}
<h2>Benachrichtigungen von pforte <small>(notifications received at <code>/demo/notifications</code>)</small></h2>
{received}
<p><a href="{reload}">Aktualisieren <small>(reload)</small></a> <a href="/demo">Zurück zum Demo-Dienst</a></p>"#,
        headline = headline(view.status),
        status = escape(view.status),
        label = status_label(view.status),
        authority = escape(view.authority),
        transaction = escape(view.transaction_id),
        reload = escape(view.reload),
        next_step = view.next_step,
    );
    document("Gebühr bezahlen", "Payment", &body)
}

pub(super) fn failure(message: &str, problem: Option<(&str, &str)>) -> String {
    super::failure_page(("Zahlung nicht möglich", "Payment failed"), message, problem)
}

fn headline(status: &str) -> &'static str {
    match status {
        "PAYED" => "Die Gebühr ist bezahlt. Vielen Dank!",
        "INITIAL" => "Die Zahlung ist noch offen.",
        "CANCELED" => "Die Zahlung wurde abgebrochen.",
        "FAILED" => "Die Zahlung ist fehlgeschlagen.",
        _ => "Der Zahlungsstatus ist unbekannt.",
    }
}

fn status_label(status: &str) -> &'static str {
    match status {
        "PAYED" => "bezahlt (paid)",
        "INITIAL" => "offen (open)",
        "CANCELED" => "abgebrochen (cancelled)",
        "FAILED" => "fehlgeschlagen (failed)",
        _ => "",
    }
}

fn time(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0).map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_offers_each_authority_with_a_label_and_carries_the_key() {
        let authorities = [
            Authority { id: "09162000".into(), name: "München".into(), provider: "Simulator A".into() },
            Authority { id: "03241001".into(), name: "<Hannover>".into(), provider: "Simulator B".into() },
        ];
        let form = pay_form("key-1", &authorities);
        assert!(form.contains(r#"<form method="post" action="/demo/pay">"#));
        assert!(form.contains(r#"name="key" value="key-1""#));
        assert!(form.contains(r#"id="authority-09162000" value="09162000" checked"#));
        assert!(form.contains(r#"<label for="authority-03241001">&lt;Hannover&gt;"#));
        assert!(form.contains("12,00 €"));
    }

    #[test]
    fn the_payment_page_escapes_what_came_from_outside() {
        let view = PaymentView {
            transaction_id: "<t>",
            authority: "München",
            status: "PAYED",
            status_detail: Some("<b>"),
            reload: "/demo/pay/return?order=a&b",
            next_step: "",
        };
        let notification = Received {
            id: "msg_<1>".into(),
            received_at: 0,
            event: "payment.status_changed".into(),
            transaction_id: "<t>".into(),
            status: "PAYED".into(),
        };
        let page = payment(&view, &[notification]);
        assert!(page.contains("Die Gebühr ist bezahlt") && page.contains("bezahlt (paid)"));
        assert!(page.contains("&lt;t&gt;") && page.contains("&lt;b&gt;") && page.contains("msg_&lt;1&gt;"));
        assert!(page.contains("href=\"/demo/pay/return?order=a&amp;b\""));
        assert!(!page.contains("<b>") && !page.contains("<t>"));
        assert!(payment(&view, &[]).contains("Noch keine Benachrichtigung"));
    }
}
