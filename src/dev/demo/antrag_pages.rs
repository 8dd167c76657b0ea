//! Pages of the demo service's application step, in the style of the other demo pages: German with
//! short English subtitles, labelled forms, no scripts; everything from outside escaped.

use super::document;
use crate::dev::escape;

/// The application form on the paid payment's page (Erika's data from the BundID simulator prefilled).
pub(super) fn form(order_id: &str) -> String {
    format!(
        r#"<h2>Antrag absenden <small>(send the application)</small></h2>
<form method="post" action="/demo/antrag">
<input type="hidden" name="order" value="{order}">
<fieldset>
<legend>Geburtsurkunde, 1 Ausfertigung <small>(birth certificate, one copy)</small></legend>
<p><label for="family_name">Familienname bei Geburt <small>(family name at birth)</small></label><br>
<input type="text" id="family_name" name="family_name" value="Gabler" maxlength="100" required></p>
<p><label for="birth_date">Geburtsdatum <small>(date of birth)</small></label><br>
<input type="date" id="birth_date" name="birth_date" value="1964-08-12" required></p>
</fieldset>
<p>Der Antrag, eine Anlage und die Nachweise von pforte über Anmeldung und Zahlung werden für das Fachverfahren
der Behörde verschlüsselt; pforte sieht nur Chiffretext. <small>(Encrypted end-to-end to the authority's
Fachverfahren, with pforte's login and payment evidence inside.)</small></p>
<p><button type="submit">Antrag absenden <small>(send)</small></button></p>
</form>"#,
        order = escape(order_id),
    )
}

pub(super) fn no_destination() -> String {
    "<p>Für diese Behörde ist kein Fachverfahren angebunden; der Antrag kann hier nicht gesendet werden. \
     <small>(No Fachverfahren receives this authority's applications.)</small></p>"
        .to_owned()
}

/// One entry of the case's event log.
pub(super) struct Event {
    /// The event's last URI segment, e.g. `accept-submission`.
    pub name: String,
    pub issuer: String,
    pub issued_at: i64,
}

pub(super) struct StatusView<'a> {
    pub submission_id: &'a str,
    pub case_id: &'a str,
    pub authority: &'a str,
    pub reload: &'a str,
}

/// The application and its event log, newest state in the headline.
pub(super) fn status(view: &StatusView, events: &[Event]) -> String {
    let headline = if events.iter().any(|e| e.name == "accept-submission") {
        "Ihr Antrag wurde von der Behörde angenommen."
    } else if events.iter().any(|e| e.name == "reject-submission") {
        "Ihr Antrag wurde von der Behörde abgelehnt."
    } else {
        "Ihr Antrag ist eingereicht und wartet auf das Fachverfahren der Behörde."
    };
    let rows: String = events
        .iter()
        .map(|e| {
            format!(
                "<tr><td><code>{name}</code></td><td><code>{issuer}</code></td><td>{time}</td></tr>\n",
                name = escape(&e.name),
                issuer = escape(&e.issuer),
                time = chrono::DateTime::from_timestamp(e.issued_at, 0)
                    .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
            )
        })
        .collect();
    let body = format!(
        r#"<p role="status"><strong>{headline}</strong></p>
<table>
<tbody>
<tr><th scope="row">Behörde <small>(authority)</small></th><td>{authority}</td></tr>
<tr><th scope="row">Einreichung <small>(<code>submissionId</code>)</small></th><td><code>{submission}</code></td></tr>
<tr><th scope="row">Vorgang <small>(<code>caseId</code>)</small></th><td><code>{case}</code></td></tr>
</tbody>
</table>
<h2>Ereignisprotokoll <small>(event log, read from <code>/v1/cases/…/events</code>)</small></h2>
<table>
<thead><tr><th scope="col">Ereignis <small>(event)</small></th><th scope="col">Aussteller <small>(issuer)</small></th><th scope="col">Zeit <small>(UTC)</small></th></tr></thead>
<tbody>
{rows}</tbody>
</table>
<p><a href="{reload}">Aktualisieren <small>(reload)</small></a> <a href="/demo">Zurück zum Demo-Dienst</a></p>"#,
        authority = escape(view.authority),
        submission = escape(view.submission_id),
        case = escape(view.case_id),
        reload = escape(view.reload),
    );
    document("Antrag absenden", "Application sent", &body)
}

pub(super) fn failure(message: &str, problem: Option<(&str, &str)>) -> String {
    super::failure_page(("Antrag nicht gesendet", "Application not sent"), message, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_page_says_accepted_once_the_log_holds_accept_and_escapes_what_came_from_outside() {
        let view = StatusView { submission_id: "<s>", case_id: "c", authority: "Hannover", reload: "/x?id=a&b" };
        let event = |name: &str| Event { name: name.into(), issuer: "<i>".into(), issued_at: 0 };
        let waiting = status(&view, &[event("create-submission"), event("submit-submission")]);
        assert!(waiting.contains("wartet auf das Fachverfahren"), "{waiting}");
        let accepted = status(&view, &[event("submit-submission"), event("accept-submission")]);
        assert!(accepted.contains("angenommen") && accepted.contains("<code>accept-submission</code>"));
        assert!(accepted.contains("&lt;s&gt;") && accepted.contains("&lt;i&gt;") && !accepted.contains("<s>"));
        assert!(accepted.contains("href=\"/x?id=a&amp;b\""));
    }
}
