//! The pages a person sees during a login: the choice of account provider and the error pages. German
//! by default, English on request; plain HTML forms, labelled, keyboard-usable, no scripts, no
//! external assets.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::identity::login::{Problem, ProviderChoice};
use crate::registry::{AccountType, Level};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    De,
    En,
}

impl Lang {
    /// The service's `ui_locales` choice first, then the browser's Accept-Language, then German.
    pub(crate) fn pick(requested: Option<&str>, headers: &HeaderMap) -> Lang {
        let from_tag = |tag: &str| match tag.trim().get(..2).map(|p| p.to_ascii_lowercase()).as_deref() {
            Some("en") => Some(Lang::En),
            Some("de") => Some(Lang::De),
            _ => None,
        };
        if let Some(lang) = requested.and_then(from_tag) {
            return lang;
        }
        let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        accept.split(',').find_map(|part| from_tag(part.split(';').next().unwrap_or_default())).unwrap_or(Lang::De)
    }

    fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    pub(crate) fn text(self, de: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::De => de,
            Lang::En => en,
        }
    }
}

pub(crate) use crate::http::html::escape;

fn layout(lang: Lang, title: &str, body: &str) -> String {
    crate::http::html::document(lang.code(), &format!("{title} · pforte"), body)
}

fn no_store(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The choice of account provider for one login. Its form is answered with a redirect to the chosen
/// provider, so its policy lets forms lead to `form_targets` (see [`super::authorize`]).
pub(crate) fn choose_provider(
    lang: Lang,
    login_id: &str,
    service: &str,
    providers: &[ProviderChoice],
    cancel: &str,
    form_targets: &[url::Origin],
) -> Response {
    let title = lang.text("Anmelden", "Log in");
    let buttons: String = providers
        .iter()
        .map(|p| {
            let who = match p.account_type {
                AccountType::Person => lang.text("für Bürgerinnen und Bürger", "for citizens"),
                AccountType::Organisation => {
                    lang.text("für Unternehmen und Organisationen", "for companies and organisations")
                }
            };
            format!(
                r#"<li><button type="submit" name="provider" value="{id}">{name}</button> <span>{who}</span></li>"#,
                id = escape(&p.id),
                name = escape(&p.display_name),
            )
        })
        .collect();
    let body = format!(
        r#"<h1>{title}</h1>
<p>{intro} <strong>{service}</strong>.</p>
<form method="post" action="/login/{login}">
<fieldset>
<legend>{legend}</legend>
<ul class="choices">{buttons}</ul>
</fieldset>
</form>
<p><a href="{cancel}">{cancel_text}</a></p>"#,
        intro = lang.text("Wählen Sie, womit Sie sich anmelden möchten, für", "Choose how to log in to"),
        service = escape(service),
        login = escape(login_id),
        legend = lang.text("Konto", "Account"),
        cancel = escape(cancel),
        cancel_text = lang.text("Abbrechen und zurück zum Onlinedienst", "Cancel and return to the online service"),
    );
    let mut response = no_store(StatusCode::OK, layout(lang, title, &body));
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, crate::http::middleware::content_security_policy(form_targets));
    response
}

/// An error page; `back` (when known) returns to the online service with an error response.
pub(crate) fn error(lang: Lang, status: StatusCode, title: &str, explanation: &str, back: Option<&str>) -> Response {
    let back = back
        .map(|url| {
            format!(
                r#"<p><a class="button" href="{}">{}</a></p>"#,
                escape(url),
                lang.text("Zurück zum Onlinedienst", "Back to the online service")
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<h1>{title}</h1>
<div class="error" role="alert"><p>{explanation}</p></div>
{back}"#,
        title = escape(title),
        explanation = escape(explanation),
    );
    no_store(status, layout(lang, title, &body))
}

fn level_name(lang: Lang, level: Level) -> &'static str {
    match level {
        Level::Low => lang.text("niedrig", "low"),
        Level::Substantial => lang.text("substanziell", "substantial"),
        Level::High => lang.text("hoch", "high"),
    }
}

/// The page for a login problem.
pub(crate) fn problem(lang: Lang, problem: Problem, back: Option<&str>) -> Response {
    if let Problem::LevelTooLow { proven, required } = problem {
        let explanation = match lang {
            Lang::De => format!(
                "Ihre Anmeldung hat das Vertrauensniveau „{}“ erreicht, dieser Onlinedienst verlangt „{}“. \
                 Bitte melden Sie sich mit einem Verfahren an, das dieses Niveau erreicht (für „hoch“ zum \
                 Beispiel mit dem Online-Ausweis).",
                level_name(lang, proven),
                level_name(lang, required)
            ),
            Lang::En => format!(
                "Your login reached the level of assurance “{}”, but this online service requires “{}”. \
                 Please log in with a method that reaches this level (for “high”, for example, the online ID card).",
                level_name(lang, proven),
                level_name(lang, required)
            ),
        };
        let title = lang.text("Vertrauensniveau nicht ausreichend", "Level of assurance too low");
        return error(lang, StatusCode::FORBIDDEN, title, &explanation, back);
    }
    let (status, title, explanation) = match problem {
        Problem::UnknownLogin => (
            StatusCode::BAD_REQUEST,
            lang.text("Anmeldung nicht gefunden", "Login not found"),
            lang.text(
                "Diese Anmeldung ist unbekannt, abgelaufen oder bereits abgeschlossen. Bitte starten Sie die Anmeldung beim Onlinedienst neu.",
                "This login is unknown, has expired or is already complete. Please start again at the online service.",
            ),
        ),
        Problem::WrongBrowser => (
            StatusCode::BAD_REQUEST,
            lang.text("Anmeldung in einem anderen Browser begonnen", "Login started in another browser"),
            lang.text(
                "Die Anmeldung muss in dem Browser abgeschlossen werden, in dem sie begonnen wurde.",
                "The login must be completed in the browser in which it was started.",
            ),
        ),
        Problem::UpstreamDown => (
            StatusCode::BAD_GATEWAY,
            lang.text("Kontodienst nicht erreichbar", "Account service unreachable"),
            lang.text(
                "Der gewählte Kontodienst antwortet gerade nicht. Bitte versuchen Sie es später erneut.",
                "The chosen account service is not answering right now. Please try again later.",
            ),
        ),
        Problem::UpstreamInvalid => (
            StatusCode::BAD_GATEWAY,
            lang.text("Anmeldung fehlgeschlagen", "Login failed"),
            lang.text(
                "Die Antwort des Kontodienstes hat die Sicherheitsprüfung nicht bestanden. Es wurden keine Daten weitergegeben.",
                "The account service's answer failed the security checks. No data was passed on.",
            ),
        ),
        Problem::ProviderNotAllowed => (
            StatusCode::BAD_REQUEST,
            lang.text("Kontodienst nicht zulässig", "Account service not allowed"),
            lang.text(
                "Dieser Kontodienst steht für diesen Onlinedienst nicht zur Verfügung.",
                "This account service is not available for this online service.",
            ),
        ),
        Problem::NoLongerRegistered => (
            StatusCode::BAD_REQUEST,
            lang.text("Onlinedienst nicht mehr verfügbar", "Online service no longer available"),
            lang.text(
                "Der Onlinedienst, für den diese Anmeldung begonnen wurde, ist nicht mehr angebunden. \
                 Es wurden keine Daten weitergegeben.",
                "The online service this login was started for is no longer connected. No data was passed on.",
            ),
        ),
        Problem::Unavailable => {
            let title = lang.text("Kurz nicht verfügbar", "Briefly unavailable");
            let explanation = lang.text(
                "pforte ist gerade kurz nicht verfügbar. Bitte versuchen Sie es in wenigen Augenblicken erneut; \
                 Ihre Daten sind dabei nicht verloren gegangen.",
                "pforte is briefly unavailable. Please try again in a few moments; none of your data was lost.",
            );
            // `Retry-After` comes from the router's layer, as on every 503.
            return error(lang, StatusCode::SERVICE_UNAVAILABLE, title, explanation, back);
        }
        Problem::LevelTooLow { .. } | Problem::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            lang.text("Technischer Fehler", "Technical error"),
            lang.text(
                "Die Anmeldung konnte wegen eines Fehlers bei pforte nicht abgeschlossen werden.",
                "The login could not be completed because of an error at pforte.",
            ),
        ),
    };
    error(lang, status, title, explanation, back)
}

/// The page for an authorization request that cannot be answered by redirect.
pub(crate) fn bad_request(lang: Lang, description: &str) -> Response {
    let title = lang.text("Ungültige Anmeldeanfrage", "Invalid login request");
    error(lang, StatusCode::BAD_REQUEST, title, description, None)
}

/// Asks before logging the person out at their account provider, when the logout request does not
/// carry a fresh ID token of the service that sent it (issue 14 finding 8): a form bound to this
/// browser, whose answer redirects to the provider's logout, so its policy lets forms lead to
/// `form_targets`. `stay` (when known) returns to the service without logging out.
pub(crate) fn confirm_logout(
    lang: Lang,
    provider: &str,
    confirmation: &str,
    stay: Option<&str>,
    form_targets: &[url::Origin],
) -> Response {
    let title = lang.text("Abmelden?", "Log out?");
    let stay = stay
        .map(|url| {
            format!(
                r#"<p><a href="{}">{}</a></p>"#,
                escape(url),
                lang.text("Nicht abmelden, zurück zum Onlinedienst", "Stay logged in and return to the online service")
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<h1>{title}</h1>
<p>{question} <strong>{provider}</strong>?</p>
<p>{why}</p>
<form method="post" action="/logout/confirm">
<input type="hidden" name="confirmation" value="{confirmation}">
<button type="submit">{button}</button>
</form>
{stay}"#,
        question = lang.text("Möchten Sie sich abmelden bei", "Do you want to log out of"),
        provider = escape(provider),
        why = lang.text(
            "Ein Onlinedienst hat Ihre Abmeldung angefordert. Wenn Sie das nicht veranlasst haben, schließen Sie dieses Fenster.",
            "An online service asked to log you out. If you did not ask for this, close this window.",
        ),
        confirmation = escape(confirmation),
        button = lang.text("Abmelden", "Log out"),
    );
    let mut response = no_store(StatusCode::OK, layout(lang, title, &body));
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, crate::http::middleware::content_security_policy(form_targets));
    response
}
