//! The HTML of finance staff in the browser: the sign-in page, the list of a clerk's authorities, the
//! signed-in bar with the sign-out form, the upload form with the list of past imports, and the
//! result of an upload. Element ids are stable (the browser suite finds them); everything from outside
//! is escaped.

use crate::finance::period::berlin_time;
use crate::http::html::{document, escape};
use crate::store::finance_imports::ImportRecord;

/// A staff identity provider as the sign-in page offers it.
pub(super) struct ProviderChoice<'a> {
    pub id: &'a str,
    pub display_name: &'a str,
}

/// `csrf` is the sign-in cookie's form token; `error` a reason shown above the forms.
pub(super) fn sign_in(providers: &[ProviderChoice<'_>], csrf: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p id=\"sign-in-error\" role=\"alert\"><strong>{}</strong></p>\n", escape(e)))
        .unwrap_or_default();
    let mut buttons = String::new();
    for provider in providers {
        buttons.push_str(&format!(
            "<button type=\"submit\" name=\"provider\" value=\"{id}\" id=\"staff-sign-in-{id}\">Anmelden mit {name}</button>\n",
            id = escape(provider.id),
            name = escape(provider.display_name),
        ));
    }
    let staff = if providers.is_empty() {
        "<p>Für keine Behörde ist ein Dienstkonto für die Anmeldung eingerichtet.</p>\n".to_owned()
    } else {
        format!(
            "<form method=\"post\" action=\"/finance/login/staff\" id=\"staff-sign-in\">\n\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n{buttons}</form>\n",
            csrf = escape(csrf)
        )
    };
    let body = format!(
        "<h1>Abgleich für Kassen</h1>\n{error}\
         <h2>Mit dem Dienstkonto</h2>\n{staff}\
         <h2>Mit einem Zugangsschlüssel</h2>\n\
         <form method=\"post\" action=\"/finance/login\" id=\"token-sign-in\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <p><label>Behörde (endPointId) <input id=\"tenant\" name=\"tenant\" required autocomplete=\"off\"></label></p>\n\
         <p><label>Zugangsschlüssel <input id=\"token\" name=\"token\" type=\"password\" required autocomplete=\"off\"></label></p>\n\
         <p><button type=\"submit\" id=\"token-submit\">Mit Schlüssel anmelden</button></p>\n</form>\n\
         <p>Den Zugangsschlüssel (pft_…) erstellt der Betrieb mit <code>pforte finance token create</code>.</p>",
        csrf = escape(csrf),
    );
    document("de", "Abgleich für Kassen: Anmeldung", &body)
}

/// The authorities a signed-in clerk may act for, each a link to its reconciliation.
pub(super) fn tenants(bar: &str, tenants: &[(String, String, String)]) -> String {
    let mut items = String::new();
    for (id, name, href) in tenants {
        items.push_str(&format!("<li><a href=\"{}\">{} ({})</a></li>\n", escape(href), escape(name), escape(id)));
    }
    let body = format!("<h1>Abgleich für Kassen</h1>\n{bar}<ul id=\"tenants\">\n{items}</ul>");
    document("de", "Abgleich für Kassen", &body)
}

/// Who is signed in, and the sign-out form.
pub(super) fn staff_bar(display_name: &str, csrf: &str) -> String {
    format!(
        "<div id=\"staff\"><p>Angemeldet als <span id=\"staff-name\">{name}</span> · \
         <a id=\"overview\" href=\"/finance\">Übersicht</a></p>\n\
         <form method=\"post\" action=\"/finance/logout\" id=\"sign-out\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <button type=\"submit\" id=\"sign-out-submit\">Abmelden</button>\n</form></div>\n",
        name = escape(display_name),
        csrf = escape(csrf),
    )
}

/// The upload form and the latest imports of the tenant. `providers` are the payment providers whose
/// settlement reports pforte can read.
pub(super) fn imports(tenant: &str, csrf: &str, providers: &[(String, String)], past: &[ImportRecord]) -> String {
    let mut options = String::new();
    for (id, name) in providers {
        options.push_str(&format!("<option value=\"{}\">{}</option>", escape(id), escape(name)));
    }
    let mut rows = String::new();
    for import in past {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            berlin_time(import.imported_at).format("%d.%m.%Y %H:%M"),
            escape(&import.imported_by),
            escape(kind_label(import.kind.as_str())),
            escape(import.provider_id.as_deref().unwrap_or("–")),
            escape(&import.file_name),
            import.row_count,
        ));
    }
    let list = if past.is_empty() {
        "<p id=\"imports-empty\">Noch keine Dateien eingelesen.</p>".to_owned()
    } else {
        format!(
            "<table id=\"imports\">\n<tr><th>eingelesen</th><th>von</th><th>Art</th><th>Anbieter</th>\
             <th>Datei</th><th>Zeilen</th></tr>\n{rows}</table>"
        )
    };
    format!(
        "<h2>Dateien einlesen</h2>\n\
         <form method=\"post\" action=\"/finance/{tenant}/imports\" enctype=\"multipart/form-data\" id=\"upload\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <p><label>Art <select id=\"upload-kind\" name=\"kind\">\
         <option value=\"settlement\">Abrechnung des Zahlungsanbieters (CSV)</option>\
         <option value=\"bank\">Kontoauszug (camt.053/054)</option></select></label></p>\n\
         <p><label>Zahlungsanbieter (nur Abrechnung) <select id=\"upload-provider\" name=\"provider\">{options}</select></label></p>\n\
         <p><label>Datei <input id=\"upload-file\" name=\"file\" type=\"file\" required></label></p>\n\
         <p><button type=\"submit\" id=\"upload-submit\">Einlesen</button></p>\n</form>\n\
         <h2>Eingelesene Dateien</h2>\n{list}",
        tenant = escape(tenant),
        csrf = escape(csrf),
    )
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "settlement" => "Abrechnung",
        "bank" => "Kontoauszug",
        _ => "Datei",
    }
}

/// What became of an upload: `Ok` says what was stored, `Err` why nothing was.
pub(super) fn upload_result(back: &str, outcome: Result<&str, &str>) -> String {
    let message = match outcome {
        Ok(text) => format!("<p id=\"import-result\" role=\"status\">{}</p>", escape(text)),
        Err(reason) => format!(
            "<p id=\"import-error\" role=\"alert\"><strong>Nicht eingelesen, nichts gespeichert:</strong> {}</p>",
            escape(reason)
        ),
    };
    let body = format!(
        "<h1>Datei einlesen</h1>\n{message}\n<p><a id=\"back\" href=\"{}\">Zurück zum Abgleich</a></p>",
        escape(back)
    );
    document("de", "Datei einlesen", &body)
}

/// A plain page with a message and a way back (a refused sign-in, a refused form).
pub(super) fn notice(title: &str, message: &str, back: &str) -> String {
    let body = format!(
        "<h1>{}</h1>\n<p id=\"notice\" role=\"alert\">{}</p>\n<p><a id=\"back\" href=\"{}\">Zurück</a></p>",
        escape(title),
        escape(message),
        escape(back)
    );
    document("de", title, &body)
}
