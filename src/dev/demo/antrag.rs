//! The demo online service's "Antrag absenden" step, after login and payment: it builds a small
//! application (JSON data and one text attachment), gets pforte's login and payment evidence, writes
//! FIT-Connect metadata 1.0.0 (`contentStructure` with SHA-512 hashes, `publicServiceType`,
//! `authenticationInformation`, `paymentInformation`), encrypts each part to the destination's current
//! key, announces (with pforte's `paymentTransactionId` extension), uploads, submits, and then shows
//! the case's event log, read anew on every reload. The API calls are in `antrag_api`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::antrag_api::{encrypt, sha512, Failure, Transfer};
use super::antrag_pages as pages;
use super::pay::{Order, SESSION_COOKIE};
use super::{html, DemoState};
use crate::crypto::random_token;
use crate::dev::see_other;

/// The service the demo applies for, as the development destinations list it.
pub(super) const SERVICE: &str = "urn:de:fim:leika:leistung:99050012104000";
const SERVICE_NAME: &str = "Geburtsurkunde beantragen";
const SCHEMA: &str = "https://schema.pforte.example/demo/geburtsurkunde-1.0.json";
const MAX_APPLICATIONS: usize = 10_000;

pub(super) fn routes() -> Router<DemoState> {
    Router::new().route("/demo/antrag", post(send)).route("/demo/antrag/status", get(status))
}

/// An application the demo sent.
#[derive(Clone)]
struct Sent {
    id: String,
    order: String,
    case_id: String,
    submission_id: String,
    authority: String,
}

/// The applications sent, by their id; one per paid order.
#[derive(Default)]
pub(super) struct Applications(Mutex<HashMap<String, Sent>>);

impl Applications {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Sent>> {
        // A panic elsewhere cannot leave this map half-updated in a way that matters to a demo.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn of_order(&self, order: &str) -> Option<Sent> {
        self.map().values().find(|sent| sent.order == order).cloned()
    }
}

/// The form on the paid payment's page; empty when no Fachverfahren receives this authority's
/// applications.
pub(super) fn form(state: &DemoState, order_id: &str, order: &Order) -> String {
    let destinations = state.demo.client.as_ref().map(|c| &c.destinations);
    match destinations.and_then(|d| d.get(&order.authority)) {
        Some(_) => pages::form(order_id),
        None => pages::no_destination(),
    }
}

/// What the citizen entered.
struct Entered {
    family_name: String,
    birth_date: String,
}

async fn send(State(state): State<DemoState>, headers: HeaderMap, body: Bytes) -> Response {
    let now = state.context.now();
    let session = super::login::cookie_named(&headers, SESSION_COOKIE);
    let id_token = session.as_deref().and_then(|id| state.demo.payments.id_token(id, now));
    let (Some(session), Some(id_token)) = (session, id_token) else {
        return html(StatusCode::FORBIDDEN, pages::failure("Bitte melden Sie sich zuerst beim Demo-Dienst an.", None));
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty() && v.len() <= 100);
    let order_id = form.get("order").cloned().unwrap_or_default();
    let order = state.demo.payments.order(&order_id).filter(|order| order.session == session);
    let Some(order) = order else {
        return html(StatusCode::NOT_FOUND, pages::failure("Zu dieser Zahlung gibt es keinen Antrag.", None));
    };
    // One application per payment: a repeated form shows the one already sent.
    if let Some(sent) = state.demo.applications.of_order(&order_id) {
        return see_other(&format!("/demo/antrag/status?id={}", sent.id));
    }
    let (Some(family_name), Some(birth_date)) = (field("family_name"), field("birth_date")) else {
        return html(StatusCode::BAD_REQUEST, pages::failure("Bitte Familienname und Geburtsdatum angeben.", None));
    };
    let destination = state.demo.client.as_ref().and_then(|c| c.destinations.get(&order.authority)).cloned();
    let (Some(destination), Some(transaction)) = (destination, order.transaction_id.clone()) else {
        return html(StatusCode::CONFLICT, pages::failure("Für diese Zahlung kann kein Antrag gesendet werden.", None));
    };
    let entered = Entered { family_name, birth_date };
    let sent = match application(&state, &destination, &transaction, id_token.expose_secret(), &entered).await {
        Ok((submission_id, case_id)) => {
            Sent { id: random_token(), order: order_id, case_id, submission_id, authority: order.authority }
        }
        Err(failure) => return failure.into_response(),
    };
    let mut map = state.demo.applications.map();
    if map.len() >= MAX_APPLICATIONS {
        return html(StatusCode::SERVICE_UNAVAILABLE, pages::failure("Zu viele Anträge. Bitte später erneut.", None));
    }
    map.insert(sent.id.clone(), sent.clone());
    see_other(&format!("/demo/antrag/status?id={}", sent.id))
}

/// Builds, encrypts and sends the application; returns (submissionId, caseId).
async fn application(
    state: &DemoState,
    destination: &str,
    transaction: &str,
    id_token: &str,
    entered: &Entered,
) -> Result<(String, String), Failure> {
    let pforte = Transfer::connect(state).await?;
    let (kid, key) = pforte.encryption_key(destination).await?;
    let attachment_id = uuid::Uuid::new_v4().to_string();
    let announced = pforte
        .announce(&json!({
            "destinationId": destination,
            "announcedAttachments": [attachment_id],
            "serviceType": { "name": SERVICE_NAME, "identifier": SERVICE },
            "paymentTransactionId": transaction,
        }))
        .await?;
    let text = |name: &str| announced[name].as_str().unwrap_or_default().to_owned();
    let (submission_id, case_id) = (text("submissionId"), text("caseId"));
    let login =
        pforte.evidence("authentication", &json!({ "idToken": id_token, "submissionId": submission_id })).await?;
    let payment =
        pforte.evidence("payment", &json!({ "transactionId": transaction, "submissionId": submission_id })).await?;

    let data = json!({
        "leistung": "Geburtsurkunde",
        "familiennameBeiGeburt": entered.family_name,
        "geburtsdatum": entered.birth_date,
        "anzahlAusfertigungen": 1,
    })
    .to_string()
    .into_bytes();
    let attachment = format!(
        "Erklärung zum Antrag auf eine Geburtsurkunde (Demo-Onlinedienst)\n\nFamilienname bei Geburt: {}\n\
         Geburtsdatum: {}\nVerwendungszweck: Demo\n",
        entered.family_name, entered.birth_date
    )
    .into_bytes();
    let metadata = json!({
        "contentStructure": {
            "data": {
                "hash": sha512(&data),
                "submissionSchema": { "schemaUri": SCHEMA, "mimeType": "application/json" },
            },
            "attachments": [{
                "hash": sha512(&attachment),
                "purpose": "attachment",
                "mimeType": "text/plain",
                "attachmentId": attachment_id,
                "filename": "erklaerung.txt",
                "description": "Erklärung zum Antrag",
            }],
        },
        "publicServiceType": { "name": SERVICE_NAME, "identifier": SERVICE },
        "authenticationInformation": [login],
        "paymentInformation": payment["paymentInformation"],
    });
    let attachment = encrypt(&key, &kid, "text/plain", &attachment)?;
    pforte.upload(&submission_id, &attachment_id, attachment).await?;
    let submit = json!({
        "encryptedMetadata": encrypt(&key, &kid, "application/json", metadata.to_string().as_bytes())?,
        "encryptedData": encrypt(&key, &kid, "application/json", &data)?,
    });
    pforte.submit(&submission_id, &submit).await?;
    Ok((submission_id, case_id))
}

/// The application's event log as pforte answers it now.
async fn status(State(state): State<DemoState>, RawQuery(query): RawQuery) -> Response {
    let id = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "id")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let Some(sent) = state.demo.applications.map().get(&id).cloned() else {
        return html(StatusCode::NOT_FOUND, pages::failure("Diesen Antrag kennt der Demo-Dienst nicht.", None));
    };
    let events = match Transfer::connect(&state).await {
        Ok(pforte) => pforte.events(&sent.case_id).await,
        Err(failure) => Err(failure),
    };
    let events = match events {
        Ok(tokens) => tokens.iter().map(|token| event(token)).collect::<Vec<_>>(),
        Err(failure) => return failure.into_response(),
    };
    let authority = state
        .demo
        .client
        .as_ref()
        .and_then(|c| c.authorities.iter().find(|a| a.id == sent.authority))
        .map_or(String::new(), |a| a.name.clone());
    let view = pages::StatusView {
        submission_id: &sent.submission_id,
        case_id: &sent.case_id,
        authority: &authority,
        reload: &format!("/demo/antrag/status?id={}", sent.id),
    };
    html(StatusCode::OK, pages::status(&view, &events))
}

/// One SET of the log as the page lists it: the event's name, its issuer and when. Shown, not
/// trusted: the Fachverfahren is the one that acts on them.
fn event(token: &str) -> pages::Event {
    use base64::Engine;
    let claims: Value = token
        .split('.')
        .nth(1)
        .and_then(|part| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|json| serde_json::from_slice(&json).ok())
        .unwrap_or_default();
    let name = claims["events"]
        .as_object()
        .and_then(|events| events.keys().next())
        .map(|uri| uri.rsplit('/').next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    pages::Event {
        name,
        issuer: claims["iss"].as_str().unwrap_or_default().to_owned(),
        issued_at: claims["iat"].as_i64().unwrap_or_default(),
    }
}
