//! What every request handler shares: the domain services the edge calls, built once by `app`.

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::watch;

use crate::audit::AuditLog;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::identity::client_auth::ClientAuthenticator;
use crate::identity::grants::Grants;
use crate::identity::login::LoginService;
use crate::identity::tokens::TokenService;
use crate::keys::KeyService;
use crate::registry::reload::Reload;
use crate::registry::SharedRegistry;
use crate::store::Database;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub settings: Settings,
    /// The registry in use; take one snapshot per request (`SharedRegistry::current`).
    pub registry: SharedRegistry,
    /// Reads the registry files again (SIGHUP, `POST /reload`); its counts say how reloads went.
    pub reload: Arc<dyn Reload>,
    pub db: Database,
    pub keys: KeyService,
    pub audit: AuditLog,
    pub clock: SharedClock,
    pub readiness: Readiness,
    /// The shared outbound client (see `http_client`).
    pub http: reqwest::Client,
    /// The client for URLs a service chose (notifications, `jwks_uri`): public addresses only, and
    /// loopback with the development simulators (`http_client::GuardedClient`, SECURITY.md #28).
    pub guarded_http: crate::http_client::GuardedClient,
    pub tokens: TokenService,
    pub login: LoginService,
    pub grants: Grants,
    pub client_auth: ClientAuthenticator,
    pub upstreams: Arc<crate::identity::upstream::Upstreams>,
    /// The payment provider instances, built once (`payment::provider::Providers`).
    pub payment_providers: crate::payment::provider::Providers,
    pub payments: crate::payment::service::PaymentService,
    pub payment_signals: crate::payment::signals::PaymentSignals,
    pub refunds: crate::payment::refund::Refunds,
    /// Finance staff tokens and the check of every use (`finance::access`).
    pub finance: crate::finance::FinanceAccess,
    /// Finance staff in the browser: sign-in mapping and sessions (`finance::staff`).
    pub staff: crate::finance::StaffSessions,
    /// The relying party towards staff identity providers, with its own callback path.
    pub staff_upstreams: Arc<crate::identity::upstream::Upstreams>,
    pub payment_callbacks: crate::payment::callbacks::PaymentCallbacks,
    /// Each online service's budget at `/token`, `/par` and `/revoke` (SECURITY.md #32).
    pub client_budgets: super::ClientBudgets,
    /// The dependencies' state, checked by `app`'s watch and served on the operator's address.
    pub health: crate::health::Health,
    /// Datentransfer: submissions to destinations' Fachverfahren (`transfer`).
    pub transfer: crate::transfer::TransferService,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Whether the database has been reached and migrated since start.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<watch::Sender<bool>>);

impl Default for Readiness {
    fn default() -> Self {
        Readiness(Arc::new(watch::channel(false).0))
    }
}

impl Readiness {
    pub fn set_ready(&self) {
        self.0.send_replace(true);
    }

    pub fn is_ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the service is ready.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }
}
