//! `POST /finance/{tenantId}/imports`: a clerk uploads a settlement report or a bank statement
//! (multipart: `csrf`, `kind` = settlement | bank, `provider` for a settlement report, `file`). The
//! file goes through `finance::import::Importer`, the same checks and all-or-nothing transaction as
//! `pforte finance import`; the answer says what was stored or why nothing was. The page's upload form
//! and the list of past imports are rendered here too.

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use super::{cookies, page, pages, staff_session, unavailable};
use crate::finance::import::{ImportError, ImportFile, ImportOutcome, Importer};
use crate::finance::staff::{csrf_matches, StaffSession};
use crate::http::state::AppState;

/// How many past imports the page lists.
const LISTED_IMPORTS: i64 = 20;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/finance/{tenant}/imports", post(upload))
}

/// The upload form and the tenant's latest imports, for the reconciliation page.
pub(crate) async fn imports_section(
    state: &AppState,
    tenant: &str,
    session: &StaffSession,
) -> Result<String, Response> {
    let past = state.db.finance_imports_of(tenant, LISTED_IMPORTS).await.map_err(|e| unavailable(&e))?;
    let providers: Vec<(String, String)> = state
        .registry
        .current()
        .payment_providers()
        .filter(|p| p.settlement.is_some())
        .map(|p| (p.id.to_string(), p.display_name.clone()))
        .collect();
    Ok(pages::imports(tenant, &session.csrf, &providers, &past))
}

/// The form's fields; the file's bytes as sent.
#[derive(Default)]
struct Upload {
    csrf: Option<String>,
    kind: Option<String>,
    provider: Option<String>,
    file_name: String,
    bytes: Option<Vec<u8>>,
}

async fn upload(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let session = match staff_session(&state, &headers, &tenant, "import.upload").await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let back = super::reconciliation_path(&state, &tenant);
    let refused = |status: StatusCode, reason: &str| page(status, pages::upload_result(&back, Err(reason)));
    let form = match read_form(multipart).await {
        Ok(form) => form,
        Err(reason) => return refused(StatusCode::BAD_REQUEST, &reason),
    };
    // The form token is checked before the file is looked at.
    let secret = cookies::read(&headers, cookies::SESSION_COOKIE);
    if !csrf_matches(secret, form.csrf.as_deref()) {
        return refused(StatusCode::FORBIDDEN, "Das Formular ist ungültig; bitte laden Sie die Seite neu.");
    }
    let Some(bytes) = form.bytes.as_deref() else {
        return refused(StatusCode::BAD_REQUEST, "Es wurde keine Datei mitgeschickt (Feld file).");
    };
    let registry = state.registry.current();
    let importer = Importer {
        db: &state.db,
        registry: &registry,
        audit: &state.audit,
        clock: state.clock.clone(),
        max_bytes: state.settings.finance.import_max_bytes,
    };
    let file = ImportFile { tenant: &tenant, file_name: &form.file_name, bytes, by: &session.staff_id };
    let outcome = match (form.kind.as_deref(), form.provider.as_deref().filter(|p| !p.is_empty())) {
        (Some("settlement"), Some(provider)) => importer.settlement(file, provider).await,
        (Some("settlement"), None) => {
            return refused(StatusCode::BAD_REQUEST, "Für eine Abrechnung ist der Zahlungsanbieter anzugeben.")
        }
        (Some("bank"), _) => importer.bank(file).await,
        _ => return refused(StatusCode::BAD_REQUEST, "Die Art der Datei ist settlement oder bank."),
    };
    match outcome {
        Ok(ImportOutcome::Imported { import_id, rows }) => {
            let text = format!("„{}“ eingelesen: {rows} Zeilen ({import_id}).", form.file_name);
            page(StatusCode::OK, pages::upload_result(&back, Ok(&text)))
        }
        Ok(ImportOutcome::AlreadyImported { import_id }) => refused(
            StatusCode::CONFLICT,
            &format!("Diese Datei wurde schon eingelesen ({import_id}); es wurde nichts Neues gespeichert."),
        ),
        Err(ImportError::Storage(e)) => unavailable(&e),
        Err(e @ ImportError::TooLarge { .. }) => refused(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string()),
        Err(e) => refused(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}

/// Reads the multipart fields; an unreadable body or a repeated field is refused with its reason.
async fn read_form(mut multipart: Multipart) -> Result<Upload, String> {
    let mut form = Upload::default();
    let unreadable =
        |e: axum::extract::multipart::MultipartError| format!("Das Formular ist nicht lesbar: {}", e.body_text());
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                if form.bytes.is_some() {
                    return Err("Bitte genau eine Datei je Upload.".to_owned());
                }
                form.file_name = field.file_name().map(file_name).unwrap_or_else(|| "upload".to_owned());
                form.bytes = Some(field.bytes().await.map_err(unreadable)?.to_vec());
            }
            "csrf" | "kind" | "provider" => {
                let value = field.text().await.map_err(unreadable)?;
                let slot = match name.as_str() {
                    "csrf" => &mut form.csrf,
                    "kind" => &mut form.kind,
                    _ => &mut form.provider,
                };
                if slot.replace(value).is_some() {
                    return Err(format!("Das Feld {name} kommt mehrfach vor."));
                }
            }
            // Unknown fields are ignored, as HTML forms may grow.
            _ => {}
        }
    }
    Ok(form)
}

/// The file's own name without any directory a browser may send, at most 200 characters.
fn file_name(sent: &str) -> String {
    let base = sent.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if cleaned.is_empty() {
        "upload".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn a_sent_file_name_loses_its_directories_and_control_characters() {
        assert_eq!(file_name("C:\\Users\\kasse\\abrechnung.csv"), "abrechnung.csv");
        assert_eq!(file_name("../../etc/passwd"), "passwd");
        assert_eq!(file_name("a\u{0}b\n.csv"), "ab.csv");
        assert_eq!(file_name(""), "upload");
    }
}
