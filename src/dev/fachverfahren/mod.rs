//! A Fachverfahren simulator under `/dev/fachverfahren`: the back office of the demo authorities,
//! subscriber of every destination whose JWKS lists its encryption key (the development files in
//! `config/destinations`). It holds its own keys (`keys`), takes pforte's `new-submissions` callbacks
//! only when their HMAC and age hold (`verify`), fetches and checks each submission over HTTP with its
//! own client credentials (`receive`), and shows what it received on a page where a person accepts or
//! rejects, which posts its own signed SET to pforte (`pages`). It knows pforte only over HTTP and
//! through the registry entries that name it; what it received is kept in memory.

mod keys;
mod pages;
mod receive;
mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{html, see_other, Context};
use crate::registry::{ClientAuth, KeyUse, Registry};
use receive::{receive, Received, Subscriber};

const BASE_PATH: &str = "/dev/fachverfahren";
/// Submissions kept in memory; the oldest are forgotten first.
const KEPT: usize = 200;

/// A destination this simulator serves, with what its subscriber needs.
pub(super) struct SimDestination {
    id: String,
    tenant: String,
    /// The kids under which the destination lists the simulator's encryption key.
    kids: Vec<String>,
    /// The subscriber client and its `client_secret_basic` secret.
    client: String,
    secret: SecretString,
    callback_secret: Option<SecretString>,
}

pub(crate) struct Fachverfahren {
    keys: keys::SimKeys,
    destinations: Vec<SimDestination>,
    received: Mutex<Vec<Received>>,
}

impl Fachverfahren {
    /// Loads the simulator's keys and finds the destinations that list them.
    pub(crate) fn new(registry: &Registry) -> anyhow::Result<Fachverfahren> {
        let keys = keys::SimKeys::load()?;
        let destinations = registry
            .destinations()
            .filter_map(|destination| {
                let kids: Vec<String> = destination
                    .keys
                    .iter()
                    .filter(|k| k.key_use == KeyUse::Encryption)
                    .filter(|k| k.jwk.get("n").and_then(Value::as_str) == Some(keys.encryption_n.as_str()))
                    .map(|k| k.kid.clone())
                    .collect();
                let client = registry.client(destination.subscriber_client.as_str())?;
                let ClientAuth::ClientSecretBasic { secret } = &client.auth else { return None };
                (!kids.is_empty()).then(|| SimDestination {
                    id: destination.id.as_str().to_owned(),
                    tenant: destination.tenant.as_str().to_owned(),
                    kids,
                    client: client.id.as_str().to_owned(),
                    secret: secret.clone(),
                    callback_secret: destination.callback.as_ref().map(|c| c.secret.clone()),
                })
            })
            .collect();
        Ok(Fachverfahren { keys, destinations, received: Mutex::default() })
    }

    fn received(&self) -> MutexGuard<'_, Vec<Received>> {
        // A panic elsewhere cannot leave this list half-updated in a way that matters to a simulator.
        self.received.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn destination(&self, id: &str) -> Option<&SimDestination> {
        self.destinations.iter().find(|d| d.id == id)
    }

    /// Receives `submission_id` unless it was received before (pforte delivers at least once); a
    /// failed attempt is tried again.
    async fn take(&self, context: &Context, destination: &SimDestination, submission_id: &str) {
        let known =
            self.received().iter().any(|r| r.submission_id == submission_id && (r.fetched || r.decision.is_some()));
        if known {
            return;
        }
        let received = receive(&self.keys, context, destination, submission_id).await;
        let mut list = self.received();
        list.retain(|r| r.submission_id != submission_id);
        if list.len() >= KEPT {
            list.remove(0);
        }
        list.push(received);
    }
}

#[derive(Clone)]
struct SimState {
    fv: Arc<Fachverfahren>,
    context: Context,
}

pub(crate) fn router(fv: Arc<Fachverfahren>, context: Context) -> Router {
    let routes = Router::new()
        .route("/", get(page))
        .route("/callbacks", post(callback))
        .route("/poll", post(poll))
        .route("/decide", post(decide))
        .with_state(SimState { fv, context });
    Router::new().nest(BASE_PATH, routes)
}

async fn page(State(state): State<SimState>) -> Response {
    let received = state.fv.received().clone();
    html(StatusCode::OK, pages::list(&received, state.fv.destinations.len()))
}

/// pforte's `new-submissions` callback: checked, answered at once, the submissions fetched after.
async fn callback(State(state): State<SimState>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    // The body picks the secret to check it with; nothing in it counts until the check passed.
    let named: Value = serde_json::from_slice(&body).unwrap_or_default();
    let destination_id = named["submissions"][0]["destinationId"].as_str().unwrap_or_default();
    let secret = state.fv.destination(destination_id).and_then(|d| d.callback_secret.as_ref());
    let Some(secret) = secret else {
        return (StatusCode::UNAUTHORIZED, "unknown destination").into_response();
    };
    let checked = verify::callback(
        secret.expose_secret().as_bytes(),
        &header("callback-timestamp"),
        &header("callback-authentication"),
        &body,
        state.context.now(),
    );
    if let Err(refusal) = checked {
        tracing::info!(?refusal, "Fachverfahren simulator: refused a callback");
        return (StatusCode::UNAUTHORIZED, "callback refused").into_response();
    }
    let mut wanted: Vec<(String, String)> = Vec::new();
    for entry in named["submissions"].as_array().into_iter().flatten() {
        let (Some(destination), Some(submission)) = (entry["destinationId"].as_str(), entry["submissionId"].as_str())
        else {
            continue;
        };
        if state.fv.destination(destination).is_some() {
            wanted.push((destination.to_owned(), submission.to_owned()));
        }
    }
    // Answered before fetching: pforte waits for this answer, and the fetch calls pforte back.
    tokio::spawn(async move {
        for (destination, submission) in wanted {
            if let Some(destination) = state.fv.destination(&destination) {
                state.fv.take(&state.context, destination, &submission).await;
            }
        }
    });
    StatusCode::NO_CONTENT.into_response()
}

/// "Abrufen": polls every destination's waiting list, the source of truth when a callback was lost.
async fn poll(State(state): State<SimState>) -> Response {
    for destination in &state.fv.destinations {
        let Ok(pforte) = Subscriber::connect(&state.context, &destination.client, &destination.secret).await else {
            continue;
        };
        let Ok(list) = pforte.json(&format!("/v1/submissions?destinationId={}", destination.id)).await else {
            continue;
        };
        let ids: Vec<String> = list["submissions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["submissionId"].as_str().map(str::to_owned))
            .collect();
        for id in ids {
            state.fv.take(&state.context, destination, &id).await;
        }
    }
    see_other(BASE_PATH)
}

/// "Annehmen" / "Ablehnen": the simulator's signed SET to pforte.
async fn decide(State(state): State<SimState>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let accept = match form.get("decision").map(String::as_str) {
        Some("accept") => true,
        Some("reject") => false,
        _ => return html(StatusCode::BAD_REQUEST, pages::failure("Bitte annehmen oder ablehnen.")),
    };
    let submission = form.get("submission").cloned().unwrap_or_default();
    let found = state.fv.received().iter().find(|r| r.submission_id == submission).cloned();
    let Some(received) = found else {
        return html(StatusCode::NOT_FOUND, pages::failure("Diese Einreichung hat der Simulator nicht erhalten."));
    };
    let Some(destination) = state.fv.destination(&received.destination_id) else {
        return html(StatusCode::NOT_FOUND, pages::failure("Der Zustellpunkt ist nicht mehr eingerichtet."));
    };
    let ids = (received.destination_id.as_str(), received.submission_id.as_str(), received.case_id.as_str());
    let outcome = match state.fv.keys.decision(ids, accept, state.context.now()) {
        Ok(set) => match Subscriber::connect(&state.context, &destination.client, &destination.secret).await {
            Ok(pforte) => pforte.post_event(&received.case_id, set).await,
            Err(problem) => Err(problem),
        },
        Err(problem) => Err(problem),
    };
    let shown = outcome.map(|()| if accept { "angenommen" } else { "abgelehnt" });
    if let Some(entry) = state.fv.received().iter_mut().find(|r| r.submission_id == submission) {
        entry.decision = Some(shown);
    }
    see_other(BASE_PATH)
}
