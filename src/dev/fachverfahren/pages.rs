//! The simulator's page, in the style of the other simulator pages: German with short English
//! subtitles, labelled forms, no scripts, only pforte's stylesheet; everything received is escaped.

use super::receive::Received;
use super::BASE_PATH;
use crate::dev::{document, escape};

/// Every received application, newest first, with its checks, data and the decision buttons.
pub(super) fn list(received: &[Received], destinations: usize) -> String {
    let setup = if destinations == 0 {
        r#"<div class="error" role="alert"><p>Kein Zustellpunkt nennt die Schlüssel des Simulators
(<code>config/destinations</code>, <code>transfer.destinations</code>).</p></div>"#
            .to_owned()
    } else {
        format!("<p>Zustellpunkte dieses Fachverfahrens <small>(destinations served)</small>: {destinations}</p>")
    };
    let entries: String = if received.is_empty() {
        "<p role=\"status\">Noch keine Anträge eingegangen. <small>(No applications yet.)</small></p>".to_owned()
    } else {
        received.iter().rev().map(entry).collect()
    };
    let body = format!(
        r#"<p><strong>Fachverfahren-Simulator</strong> <small>(Testumgebung / test environment)</small></p>
<h1>Eingegangene Anträge <small lang="en">Fachverfahren simulator: received applications</small></h1>
<p>Der Simulator ist das Fachverfahren der Demo-Behörden: pforte ruft ihn bei neuen Einreichungen zurück, er
holt sie mit eigenen Zugangsdaten ab, entschlüsselt sie mit eigenem Schlüssel und prüft Hashes und die Nachweise
von pforte. <small>It fetches, decrypts and verifies submissions, then accepts or rejects them.</small></p>
{setup}
<form method="post" action="{BASE_PATH}/poll">
<p><button type="submit">Abrufen <small>(poll pforte)</small></button></p>
</form>
{entries}"#
    );
    document("Fachverfahren-Simulator", &body)
}

fn entry(r: &Received) -> String {
    let checks: String = r
        .checks
        .iter()
        .map(|(label, outcome)| {
            let (mark, text) = match outcome {
                Ok(found) => ("✓ bestanden <small>(passed)</small>", found),
                Err(problem) => ("✗ <strong>nicht bestanden</strong> <small>(failed)</small>", problem),
            };
            format!("<tr><th scope=\"row\">{}</th><td>{mark}</td><td>{}</td></tr>\n", escape(label), escape(text))
        })
        .collect();
    let attachments: String = r
        .attachments
        .iter()
        .map(|(name, mime, size)| {
            format!("<li>{} <small>(<code>{}</code>, {size} Bytes)</small></li>\n", escape(name), escape(mime))
        })
        .collect();
    let data = r.data.as_deref().map(|d| format!("<pre>{}</pre>", escape(d))).unwrap_or_default();
    let optional =
        |value: &Option<String>| value.as_deref().map_or("–".to_owned(), |v| format!("<code>{}</code>", escape(v)));
    let decision = match &r.decision {
        Some(Ok(done)) => format!("<p role=\"status\"><strong>Entscheidung an pforte gesendet: {done}.</strong></p>"),
        Some(Err(problem)) => {
            format!(
                "<div class=\"error\" role=\"alert\"><p>pforte hat die Entscheidung abgelehnt: {}</p></div>{}",
                escape(problem),
                form(r)
            )
        }
        None if r.fetched => form(r),
        None => String::new(),
    };
    let verdict = if r.all_passed() {
        "<p role=\"status\"><strong>Alle Prüfungen bestanden.</strong> <small>(All checks passed.)</small></p>"
    } else {
        "<div class=\"error\" role=\"alert\"><p>Nicht alle Prüfungen bestanden. <small>(Some checks failed.)</small></p></div>"
    };
    let received_at = chrono::DateTime::from_timestamp(r.received_at, 0)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S").to_string());
    format!(
        r#"<section>
<h2>Antrag <code>{service}</code></h2>
{verdict}
<table>
<tbody>
<tr><th scope="row">Eingegangen <small>(received, UTC)</small></th><td>{received_at}</td></tr>
<tr><th scope="row">Einreichung <small>(<code>submissionId</code>)</small></th><td><code>{submission}</code></td></tr>
<tr><th scope="row">Vorgang <small>(<code>caseId</code>)</small></th><td><code>{case}</code></td></tr>
<tr><th scope="row">Vertrauensniveau <small>(level, verified)</small></th><td>{level}</td></tr>
<tr><th scope="row">Kontodienst <small>(provider, verified)</small></th><td>{provider}</td></tr>
<tr><th scope="row">Bezahlt <small>(amount paid, verified)</small></th><td>{amount}</td></tr>
</tbody>
</table>
<h3>Prüfungen <small>(checks)</small></h3>
<table>
<tbody>
{checks}</tbody>
</table>
<h3>Antragsdaten <small>(decrypted data)</small></h3>
{data}
<ul>
{attachments}</ul>
{decision}
</section>
"#,
        service = escape(&r.service),
        submission = escape(&r.submission_id),
        case = escape(&r.case_id),
        level = optional(&r.level),
        provider = optional(&r.provider),
        amount = r.amount.as_deref().map_or("–".to_owned(), |a| format!("{} EUR", escape(a))),
    )
}

fn form(r: &Received) -> String {
    format!(
        r#"<form method="post" action="{BASE_PATH}/decide">
<input type="hidden" name="submission" value="{submission}">
<p><button type="submit" name="decision" value="accept">Annehmen <small>(accept)</small></button>
<button type="submit" name="decision" value="reject">Ablehnen <small>(reject)</small></button></p>
</form>"#,
        submission = escape(&r.submission_id),
    )
}

pub(super) fn failure(message: &str) -> String {
    let body = format!(
        r#"<div class="error" role="alert"><p>{}</p></div>
<p><a href="{BASE_PATH}">Zurück zum Fachverfahren-Simulator</a></p>"#,
        escape(message)
    );
    document("Fachverfahren-Simulator", &body)
}
