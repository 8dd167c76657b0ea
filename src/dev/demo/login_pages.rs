//! The demo online service's pages: German with short English subtitles, plain labelled forms, no
//! scripts, only pforte's stylesheet. Everything that came from outside is escaped.

use serde_json::Value;

use super::document;
use super::login::{LoggedIn, SCOPES};
use crate::dev::escape;

/// The start page: what this service is, and the form that starts a login.
pub(super) fn start(logged_out: bool) -> String {
    let notice = if logged_out {
        r#"<p role="status"><strong>Sie sind abgemeldet.</strong> <small>You are logged out.</small></p>"#
    } else {
        ""
    };
    let levels: String = [("low", "niedrig"), ("substantial", "substanziell"), ("high", "hoch")]
        .iter()
        .map(|(value, german)| {
            let selected = if *value == "substantial" { " selected" } else { "" };
            format!(r#"<option value="{value}"{selected}>{german} ({value})</option>"#)
        })
        .collect();
    let scopes: String = SCOPES
        .iter()
        .map(|scope| {
            let checked = if *scope == "profile" { " checked" } else { "" };
            format!(
                "<div><input type=\"checkbox\" name=\"scope\" id=\"scope-{scope}\" value=\"{scope}\"{checked}> \
                 <label for=\"scope-{scope}\">{label} <small>(<code>{scope}</code>)</small></label></div>\n",
                label = scope_label(scope),
            )
        })
        .collect();
    let body = format!(
        r#"{notice}
<p><strong>Testumgebung:</strong> Dies ist ein Demo-Onlinedienst von pforte. Er meldet Sie über pforte an und zeigt,
was ein Onlinedienst dabei erhält. Es wird nichts beantragt. <small>A demo online service: it logs you in through
pforte and shows what a service receives. Nothing is applied for.</small></p>
<form method="get" action="/demo/login">
<fieldset>
<legend>Anmeldung <small>(login)</small></legend>
<p><label for="level">Mindestens erforderliches Vertrauensniveau <small>(required level of assurance)</small></label><br>
<select id="level" name="level">{levels}</select></p>
</fieldset>
<fieldset>
<legend>Angefragte Daten <small>(requested scopes; <code>openid</code> is always sent)</small></legend>
{scopes}</fieldset>
<p><button type="submit">Anmelden <small>(log in)</small></button></p>
</form>"#
    );
    document("Geburtsurkunde beantragen", "Demo online service: apply for a birth certificate", &body)
}

/// The result of a login: who logged in, at which level, with which provider, and every claim;
/// then the next step (`pay_form`, HTML built by the pay step).
pub(super) fn logged_in(done: &LoggedIn, pay_form: &str) -> String {
    let rows: String = done
        .claims
        .iter()
        .map(|(name, value)| {
            format!(
                "<tr><th scope=\"row\">{label} <small>(<code>{name}</code>)</small></th><td>{value}</td></tr>\n",
                label = claim_label(name),
                name = escape(name),
                value = render(value),
            )
        })
        .collect();
    let body = format!(
        r#"<p role="status"><strong>Sie sind angemeldet.</strong> <small>You are logged in.</small></p>
<table>
<tbody>
<tr><th scope="row">Vertrauensniveau <small>(<code>acr</code>)</small></th><td><code>{acr}</code> {level}</td></tr>
<tr><th scope="row">Kontodienst <small>(<code>idp</code>)</small></th><td><code>{idp}</code></td></tr>
<tr><th scope="row">Kontoart <small>(<code>account_type</code>)</small></th><td><code>{account_type}</code></td></tr>
<tr><th scope="row">Pseudonym für diesen Dienst <small>(pairwise <code>sub</code>)</small></th><td><code>{sub}</code></td></tr>
</tbody>
</table>
<h2>Erhaltene Daten <small>(all received claims)</small></h2>
<table>
<thead><tr><th scope="col">Angabe <small>(claim)</small></th><th scope="col">Wert <small>(value)</small></th></tr></thead>
<tbody>
{rows}</tbody>
</table>
{pay_form}
<p><a class="button" href="{logout}">Abmelden <small>(log out)</small></a> <a href="/demo">Neu anmelden</a></p>"#,
        acr = escape(&done.acr),
        level = level_label(&done.acr),
        idp = escape(&done.idp),
        account_type = escape(&done.account_type),
        sub = escape(&done.sub),
        logout = escape(&done.logout_url),
    );
    document("Geburtsurkunde beantragen", "Login complete", &body)
}

/// pforte's error answer, e.g. when the person cancelled at the account provider.
pub(super) fn refused(error: &str, description: Option<&str>) -> String {
    let description = description.map(|d| format!("<br>{}", escape(d))).unwrap_or_default();
    let body = format!(
        r#"<div class="error" role="alert"><p><strong>Die Anmeldung wurde nicht erteilt.</strong> <small>The login was refused.</small><br>
<code>{error}</code>{description}</p></div>
<p><a href="/demo">Zurück zum Demo-Dienst</a></p>"#,
        error = escape(error),
    );
    document("Anmeldung abgelehnt", "Login refused", &body)
}

pub(super) fn failure(message: &str) -> String {
    let body = format!(
        r#"<div class="error" role="alert"><p>{}</p></div>
<p><a href="/demo">Zurück zum Demo-Dienst</a></p>"#,
        escape(message)
    );
    document("Anmeldung fehlgeschlagen", "Login failed", &body)
}

/// A claim value for a table cell: strings as they are, addresses as lines, other objects as
/// `name: value` lines.
fn render(value: &Value) -> String {
    match value {
        Value::String(text) => escape(text),
        Value::Array(items) => items.iter().map(render).collect::<Vec<_>>().join(", "),
        Value::Object(map) if map.contains_key("street_address") || map.contains_key("locality") => {
            let part = |key: &str| map.get(key).map(render).unwrap_or_default();
            let town = [part("postal_code"), part("locality")].into_iter().filter(|p| !p.is_empty());
            [part("street_address"), town.collect::<Vec<_>>().join(" "), part("country")]
                .into_iter()
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join("<br>")
        }
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| format!("<code>{}</code>: {}", escape(key), render(value)))
            .collect::<Vec<_>>()
            .join("<br>"),
        other => escape(&other.to_string()),
    }
}

fn scope_label(scope: &str) -> &'static str {
    match scope {
        "profile" => "Name",
        "birth" => "Geburtsdaten",
        "email" => "E-Mail-Adresse",
        "address" => "Anschrift",
        "postbox" => "Postfach",
        "organisation" => "Unternehmensdaten",
        _ => "",
    }
}

fn claim_label(name: &str) -> &'static str {
    match name {
        "sub" => "Pseudonym",
        "acr" => "Vertrauensniveau",
        "amr" => "Anmeldemethode",
        "idp" => "Kontodienst",
        "account_type" => "Kontoart",
        "given_name" => "Vorname",
        "family_name" => "Familienname",
        "title" => "Titel",
        "birth_name" => "Geburtsname",
        "birthdate" => "Geburtsdatum",
        "place_of_birth" => "Geburtsort",
        "nationality" => "Staatsangehörigkeit",
        "email" => "E-Mail-Adresse",
        "address" => "Anschrift",
        "postbox" => "Postfach",
        "org_name" => "Unternehmen",
        "org_tax_number" => "Steuernummer",
        "org_vat_id" => "USt-IdNr.",
        "org_legal_form" => "Rechtsform",
        "org_register_type" => "Registerart",
        "org_register_number" => "Registernummer",
        "org_register_court" => "Registergericht",
        "org_address" => "Anschrift des Unternehmens",
        _ => "",
    }
}

fn level_label(acr: &str) -> &'static str {
    match acr {
        "http://eidas.europa.eu/LoA/low" => "niedrig (low)",
        "http://eidas.europa.eu/LoA/substantial" => "substanziell (substantial)",
        "http://eidas.europa.eu/LoA/high" => "hoch (high)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_rendered_as_lines_and_values_are_escaped() {
        let address = serde_json::json!({
            "street_address": "Heidestraße 17", "postal_code": "51147", "locality": "Köln", "country": "DE"
        });
        assert_eq!(render(&address), "Heidestraße 17<br>51147 Köln<br>DE");
        assert_eq!(render(&Value::from("<b>")), "&lt;b&gt;");
        assert_eq!(render(&serde_json::json!({"x": "<i>"})), "<code>x</code>: &lt;i&gt;");
    }

    #[test]
    fn refusal_shows_error_and_description_escaped() {
        let page = refused("access_denied", Some("<script>alert(1)</script>"));
        assert!(page.contains("<code>access_denied</code>"));
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));
        assert!(page.contains("href=\"/demo\""));
    }

    #[test]
    fn start_page_offers_every_level_and_scope_with_labels() {
        let page = start(false);
        assert!(page.contains("action=\"/demo/login\"") && page.contains("<label for=\"level\">"));
        for value in ["low", "substantial", "high"] {
            assert!(page.contains(&format!("value=\"{value}\"")), "{value}");
        }
        for scope in SCOPES {
            assert!(page.contains(&format!("<label for=\"scope-{scope}\">")), "{scope}");
        }
        assert!(!page.contains("abgemeldet"));
        assert!(start(true).contains("Sie sind abgemeldet"));
    }
}
