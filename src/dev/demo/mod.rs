//! The demo online service "Geburtsurkunde beantragen" under `/demo`: what an online service does
//! with pforte, over real HTTP against pforte's public URL. `login` is its relying party (OpenID
//! Connect Core 1.0 with PKCE S256 and RFC 9207, through the `openidconnect` crate), `pay` its pay
//! step, a client of pforte's payment API (XBezahldienste v1.0.0 with an Idempotency-Key, see the
//! shared reference `xbezahldienste.md`), which also receives pforte's notifications and checks their
//! Standard Webhooks signature (`webhook`). Once paid, `antrag` sends the application end-to-end
//! encrypted to the authority's Fachverfahren through pforte's Datentransfer API, with pforte's login
//! and payment evidence inside, and shows the case's event log. It knows its own registry entry
//! (`config/clients/demo.toml`) and which destinations receive its service, nothing of pforte's code.

mod antrag;
mod antrag_api;
mod antrag_pages;
mod login;
mod login_pages;
mod pay;
mod pay_api;
mod pay_pages;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use secrecy::SecretString;

use super::{html, Context};
use crate::registry::{ClientAuth, Registry};

/// The registry entry this service logs in and pays as.
const CLIENT_ID: &str = "demo";

/// What the demo service knows of its registry entry: what a real service keeps in its own settings.
struct DemoClient {
    /// Its `client_secret_basic` secret; `None` when registered with another method.
    secret: Option<SecretString>,
    originator_id: Option<String>,
    notification_secret: Option<SecretString>,
    /// Its authorities, with their names and their payment providers' names.
    authorities: Vec<pay_pages::Authority>,
    /// The destination receiving its application per authority (tenant id), where there is one.
    destinations: HashMap<String, String>,
}

impl DemoClient {
    fn from_registry(registry: &Registry) -> Option<DemoClient> {
        let client = registry.client(CLIENT_ID)?;
        let secret = match &client.auth {
            ClientAuth::ClientSecretBasic { secret } => Some(secret.clone()),
            _ => None,
        };
        let authorities = client
            .tenants
            .iter()
            .filter_map(|id| registry.tenant(id.as_str()))
            .map(|tenant| pay_pages::Authority {
                id: tenant.id.as_str().to_owned(),
                name: tenant.display_name.clone(),
                provider: registry
                    .payment_provider(tenant.payment.provider.as_str())
                    .map(|p| p.display_name.clone())
                    .unwrap_or_default(),
            })
            .collect();
        // A real service learns this from FIT-Connect's routing; the demo reads the registry it runs with.
        let destinations = registry
            .destinations()
            .filter(|d| d.offers_service(antrag::SERVICE) && client.tenants.contains(&d.tenant))
            .map(|d| (d.tenant.as_str().to_owned(), d.id.as_str().to_owned()))
            .collect();
        Some(DemoClient {
            destinations,
            secret,
            originator_id: client.originator_id.as_ref().map(|id| id.as_str().to_owned()),
            notification_secret: client.notification_secret.clone(),
            authorities,
        })
    }
}

/// The demo service's memory and settings.
pub(crate) struct Demo {
    client: Option<DemoClient>,
    logins: login::PendingLogins,
    payments: pay::DemoPayments,
    applications: antrag::Applications,
}

impl Demo {
    pub(super) fn new(registry: &Registry) -> Demo {
        Demo {
            client: DemoClient::from_registry(registry),
            logins: login::PendingLogins::default(),
            payments: pay::DemoPayments::default(),
            applications: antrag::Applications::default(),
        }
    }
}

/// The handlers' state.
#[derive(Clone)]
struct DemoState {
    demo: Arc<Demo>,
    context: Context,
}

/// `/demo`, its login and its pay step.
pub(crate) fn router(demo: Arc<Demo>, context: Context) -> Router {
    Router::new()
        .merge(login::routes())
        .merge(pay::routes())
        .merge(antrag::routes())
        .with_state(DemoState { demo, context })
}

/// A page of the demo service: its banner, a German heading with an English subtitle, then `body`
/// (HTML the caller escaped).
fn document(heading: &str, subtitle: &str, body: &str) -> String {
    let body = format!(
        "<p><strong>Demo-Onlinedienst</strong> <small>(Testumgebung / test environment)</small></p>\n\
         <h1>{heading} <small lang=\"en\">{subtitle}</small></h1>\n{body}",
        heading = super::escape(heading),
        subtitle = super::escape(subtitle),
    );
    crate::dev::document(&format!("{heading} – Demo-Onlinedienst"), &body)
}

/// A demo step that failed: the message and, when pforte refused, its problem code and detail.
fn failure_page(title: (&str, &str), message: &str, problem: Option<(&str, &str)>) -> String {
    let problem = problem
        .map(|(code, detail)| format!("<br><code>{}</code> {}", super::escape(code), super::escape(detail)))
        .unwrap_or_default();
    let body = format!(
        r#"<div class="error" role="alert"><p>{}{problem}</p></div>
<p><a href="/demo">Zurück zum Demo-Dienst</a></p>"#,
        super::escape(message)
    );
    document(title.0, title.1, &body)
}
