//! The simulators' pages, in German like the accounts they stand for: no scripts, no external assets,
//! only pforte's stylesheet, every control labelled.

use super::personas::{LevelOption, Persona};
use crate::dev::escape;

/// What the login page needs to show.
pub(super) struct LoginPage<'a> {
    pub display_name: &'a str,
    pub decide_action: &'a str,
    pub request_id: &'a str,
    pub client_id: &'a str,
    pub personas: &'a [Persona],
    pub levels: &'a [LevelOption],
    pub preselected_acr: &'a str,
}

pub(super) fn login(page: &LoginPage<'_>) -> String {
    let personas: String = page
        .personas
        .iter()
        .enumerate()
        .map(|(index, persona)| {
            radio(
                "persona",
                &format!("persona-{}", persona.key),
                persona.key,
                index == 0,
                &format!("{} <small>({})</small>", escape(persona.label), escape(persona.summary)),
            )
        })
        .collect();
    let levels: String = page
        .levels
        .iter()
        .map(|level| {
            radio(
                "level",
                &format!("level-{}", level.acr),
                level.acr,
                level.acr == page.preselected_acr,
                &format!("{} <small>(<code>{}</code>)</small>", escape(level.label), escape(level.acr)),
            )
        })
        .collect();
    let body = format!(
        r#"<p><strong>Testumgebung:</strong> Hier meldet sich niemand wirklich an. Alle Personen und Daten sind erfunden.</p>
<p>Der Dienst <code>{client}</code> bittet um eine Anmeldung.</p>
<form method="post" action="{action}">
<input type="hidden" name="request" value="{request}">
<fieldset>
<legend>Als wer möchten Sie sich anmelden?</legend>
{personas}</fieldset>
<fieldset>
<legend>Womit melden Sie sich an? (Vertrauensniveau)</legend>
{levels}</fieldset>
<p>
<button type="submit" name="action" value="login">Anmelden</button>
<button type="submit" name="action" value="cancel">Abbrechen</button>
</p>
</form>"#,
        client = escape(page.client_id),
        action = escape(page.decide_action),
        request = escape(page.request_id),
    );
    document(page.display_name, &format!("Anmelden – {}", page.display_name), &body)
}

pub(super) fn error(display_name: &str, message: &str) -> String {
    let body = format!(
        r#"<div class="error" role="alert"><p>{}</p></div>
<p>Sie werden nicht zum anfragenden Dienst zurückgeleitet, weil die Anfrage nicht sicher zugeordnet werden kann.</p>"#,
        escape(message)
    );
    document(display_name, "Anmeldung nicht möglich", &body)
}

pub(super) fn logged_out(display_name: &str) -> String {
    document(display_name, "Sie sind abgemeldet", "<p>Sie können dieses Fenster jetzt schließen.</p>")
}

fn radio(name: &str, id: &str, value: &str, checked: bool, label_html: &str) -> String {
    let checked = if checked { " checked" } else { "" };
    format!(
        "<div><input type=\"radio\" name=\"{name}\" id=\"{id}\" value=\"{value}\"{checked}> \
         <label for=\"{id}\">{label_html}</label></div>\n",
        id = escape(id),
        value = escape(value),
    )
}

fn document(display_name: &str, heading: &str, body: &str) -> String {
    let body = format!(
        "<p><strong>{display_name}</strong></p>\n<h1>{heading}</h1>\n{body}",
        display_name = escape(display_name),
        heading = escape(heading),
    );
    crate::dev::document(&format!("{heading} – {display_name}"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_page_shows_the_escaped_message_in_german() {
        let page = error("BundID (Simulator)", "<script>");
        assert!(page.contains("lang=\"de\""));
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("<script>"));
    }
}
