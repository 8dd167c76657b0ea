//! Builds the application from settings and registry: binds the listener (port 0 in tests), prepares
//! the database without waiting for it, and runs the server until shutdown. A registry reload is
//! carried out here too (`reload`), as it renews services built here.

mod reload;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditEvent, AuditLog};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::http::state::{AppState, Readiness, Shared};
use crate::identity::client_auth::ClientAuthenticator;
use crate::identity::grants::Grants;
use crate::identity::login::LoginService;
use crate::identity::tokens::TokenService;
use crate::identity::upstream::Upstreams;
use crate::keys::{KeyService, MasterKey, MasterKeyOrigin, RotationSchedule, SigningAlg};
use crate::registry::{Registry, SharedRegistry};
use crate::store::Database;

const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(30);
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the outage watch asks the database, and how long it waits for the answer.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
const WATCH_TIMEOUT: Duration = Duration::from_secs(2);
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

pub struct Application {
    listener: TcpListener,
    port: u16,
    /// The operator's listener (`server.metrics_listen`), when configured.
    admin_listener: Option<TcpListener>,
    state: AppState,
    shutdown: CancellationToken,
    /// The development simulators, when `dev.simulators` is on; they keep their own state.
    #[cfg(feature = "simulators")]
    simulators: Option<crate::dev::Simulators>,
}

impl Application {
    pub async fn build(settings: Settings, registry: Registry) -> anyhow::Result<Application> {
        Self::build_with_clock(settings, registry, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        settings: Settings,
        registry: Registry,
        clock: SharedClock,
    ) -> anyhow::Result<Application> {
        let listen = settings.server.listen;
        let listener =
            TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        Self::build_on(listener, settings, registry, clock)
    }

    /// Serves on a listener the caller bound already (tests bind port 0 first, so the public URL
    /// can name the real port).
    pub fn build_on(
        listener: TcpListener,
        settings: Settings,
        registry: Registry,
        clock: SharedClock,
    ) -> anyhow::Result<Application> {
        #[cfg(feature = "simulators")]
        let simulators = match settings.dev.simulators {
            true => Some(crate::dev::Simulators::new(&settings, &registry, clock.clone())?),
            false => None,
        };
        #[cfg(not(feature = "simulators"))]
        anyhow::ensure!(!settings.dev.simulators, "dev.simulators is on, but this build has no simulators");
        let admin_listener = settings.server.metrics_listen.map(bind_admin).transpose()?;
        if admin_listener.is_some() {
            // Recording starts with the first server that serves `/metrics`; the recorder is the
            // process's, so a second one in the same process (tests) shares it.
            crate::telemetry::metrics::install();
        }
        let state = build_state(settings, registry, clock)?;
        let port = listener.local_addr()?.port();
        Ok(Application {
            listener,
            port,
            admin_listener,
            state,
            shutdown: CancellationToken::new(),
            #[cfg(feature = "simulators")]
            simulators,
        })
    }

    /// The development simulators, when they run (tests reach into the pmPayment peer).
    #[cfg(feature = "simulators")]
    pub fn simulators(&self) -> Option<crate::dev::Simulators> {
        self.simulators.clone()
    }

    /// The routes `http` mounts beside pforte's own: the simulators', when they run.
    fn extra_routes(&self) -> axum::Router {
        #[cfg(feature = "simulators")]
        if let Some(simulators) = &self.simulators {
            return simulators.router();
        }
        axum::Router::new()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the operator's address, when `server.metrics_listen` is set (port 0 binds a free
    /// one, as tests do).
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port())
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Reads the registry files again and puts them in use when valid (SIGHUP, `POST /reload`).
    pub fn reloader(&self) -> Arc<dyn crate::registry::reload::Reload> {
        self.state.reload.clone()
    }

    /// Cancelling this token stops the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled; in-flight requests get the configured grace
    /// period to finish, background work stops, and the database pool closes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let extra_routes = self.extra_routes();
        let Application { listener, port, admin_listener, state, shutdown, .. } = self;
        let mut workers: Vec<JoinHandle<()>> = vec![
            tokio::spawn(bootstrap(state.clone(), shutdown.clone())),
            tokio::spawn(purge_expired(state.clone(), shutdown.clone())),
            tokio::spawn(refresh_keys(state.clone(), shutdown.clone())),
            tokio::spawn(watch_database(state.clone(), shutdown.clone())),
            tokio::spawn(chain_audit_events(state.clone(), shutdown.clone())),
        ];
        if state.settings.workers.notifications {
            workers.push(tokio::spawn(deliver_notifications(state.clone(), shutdown.clone())));
            workers.push(tokio::spawn(deliver_transfer_callbacks(state.clone(), shutdown.clone())));
        }
        if state.settings.workers.payment_status {
            workers.push(tokio::spawn(check_payments(state.clone(), shutdown.clone())));
        }
        if state.settings.workers.personal_data {
            workers.push(tokio::spawn(retain_personal_data(state.clone(), shutdown.clone())));
        }
        if state.settings.workers.transfer_retention {
            workers.push(tokio::spawn(retain_transfers(state.clone(), shutdown.clone())));
        }
        workers.push(tokio::spawn(watch_dependencies(state.clone(), shutdown.clone())));
        if let Some(admin_listener) = admin_listener {
            workers.push(tokio::spawn(serve_admin(admin_listener, state.clone(), shutdown.clone())));
        }
        tracing::info!(
            port,
            public_url = %state.settings.server.public_url,
            database = state.db.redacted_url(),
            "pforte {} listening",
            env!("CARGO_PKG_VERSION")
        );

        let grace = Duration::from_secs(state.settings.server.shutdown_grace_secs);
        let router = crate::http::router(state.clone(), extra_routes);
        // The peer address keys the rate limits (SECURITY.md #32).
        let router = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let grace_over = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
            }
        };
        tokio::select! {
            result = server => result?,
            () = grace_over => tracing::warn!("shutdown grace period over; closing remaining connections"),
        }
        shutdown.cancel();
        for worker in workers {
            if tokio::time::timeout(grace, worker).await.is_err() {
                tracing::warn!("a background worker did not stop within the grace period");
            }
        }
        // Requests and workers are done: chain what they recorded, so a graceful stop leaves nothing
        // pending (after a kill, the next instance to start chains it).
        if let Err(e) = state.audit.chain_pending().await {
            tracing::warn!(error = %e, "could not chain the last audit events; the next start chains them");
        }
        state.db.close().await;
        tracing::info!("pforte stopped");
        Ok(())
    }
}

/// Binds the operator's address at build time, so a taken port fails the start, not a worker later.
fn bind_admin(address: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(address)
        .map_err(|e| anyhow::anyhow!("cannot listen on {address} (server.metrics_listen): {e}"))?;
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener)?)
}

/// Serves the operator's routes (`http::admin`) until shutdown.
async fn serve_admin(listener: TcpListener, state: AppState, shutdown: CancellationToken) {
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(address, "operator address (metrics, status, reload) listening");
    let router = crate::http::admin::router(state);
    let upkeep = tokio::spawn(metrics_upkeep(shutdown.clone()));
    if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(error = %e, "the operator address stopped");
    }
    upkeep.abort();
}

/// Folds the recorded histogram samples into their buckets every few seconds, so memory stays
/// bounded when nobody scrapes (a scrape does the same).
async fn metrics_upkeep(shutdown: CancellationToken) {
    let Some(handle) = crate::telemetry::metrics::handle() else { return };
    loop {
        tokio::select! {
            () = tokio::time::sleep(METRICS_UPKEEP_INTERVAL) => handle.run_upkeep(),
            () = shutdown.cancelled() => return,
        }
    }
}

fn build_state(settings: Settings, registry: Registry, clock: SharedClock) -> anyhow::Result<AppState> {
    let db = Database::connect_lazy(&settings.database)?;
    let (master, origin) = MasterKey::load(&settings.keys.master_key, settings.dev.simulators)?;
    if let MasterKeyOrigin::CreatedFile(path) = origin {
        tracing::warn!(
            file = %path.display(),
            "created a new development master key; keep this file, it decrypts the signing keys"
        );
    }
    let audit = AuditLog::new(db.clone(), clock.clone());
    let keys = KeyService::new(db.clone(), master, clock.clone(), audit.clone(), settings.keys.retired_publish_secs);
    let http = crate::http_client::outbound_client()?;
    let guarded_http =
        crate::http_client::GuardedClient::new(crate::http_client::Reach::for_development(settings.dev.simulators))?;
    let registry = SharedRegistry::new(registry);
    let issuer = settings.issuer();
    let tokens = TokenService::new(keys.clone(), db.clone(), issuer.clone(), clock.clone())?;
    let upstreams = citizen_upstreams(&settings, &http, &clock);
    let login = LoginService::new(
        db.clone(),
        registry.clone(),
        upstreams.clone(),
        tokens.clone(),
        keys.master(),
        audit.clone(),
        clock.clone(),
    );
    let grants = Grants::new(db.clone(), tokens.clone(), keys.master(), audit.clone(), clock.clone());
    let client_auth = ClientAuthenticator::new(
        db.clone(),
        guarded_http.clone(),
        clock.clone(),
        crate::http::oidc::assertion_audiences(&issuer),
    );
    // Payment announces its money events; the tenant's ledger books them.
    let books: Arc<dyn crate::payment::books::PaymentBooks> = Arc::new(crate::finance::ledger::LedgerBooks);
    let signals = crate::payment::signals::PaymentSignals::new(
        db.clone(),
        audit.clone(),
        clock.clone(),
        registry.clone(),
        books.clone(),
    );
    let payment_providers = crate::payment::provider::Providers::build(&registry.current(), &http);
    // The payment services name the edge's routes and store its rendering of a create's answer.
    let payment_edge = crate::payment::PaymentEdge {
        routes: Arc::new(crate::http::payments::Routes::new(issuer.clone())),
        answers: Arc::new(crate::http::payments::Answers),
    };
    let payments = crate::payment::service::PaymentService::new(
        db.clone(),
        registry.clone(),
        signals.clone(),
        payment_providers.clone(),
        clock.clone(),
        payment_edge.clone(),
        &settings.payments,
        keys.master(),
    )
    .with_request_timeout(Duration::from_secs(settings.server.request_timeout_secs))
    .with_outbound_reach(crate::http_client::Reach::for_development(settings.dev.simulators));
    let refunds = crate::payment::refund::Refunds::new(
        db.clone(),
        registry.clone(),
        audit.clone(),
        payment_providers.clone(),
        books,
        payment_edge,
        clock.clone(),
    )
    .with_request_timeout(Duration::from_secs(settings.server.request_timeout_secs));
    let finance = crate::finance::FinanceAccess::new(db.clone(), audit.clone(), clock.clone(), registry.clone());
    let staff = crate::finance::StaffSessions::new(
        db.clone(),
        audit.clone(),
        clock.clone(),
        registry.clone(),
        keys.master(),
        &settings.finance,
    );
    // Staff identity providers answer on their own callback path, apart from citizens' logins.
    let staff_upstreams = Arc::new(Upstreams::new(
        http.clone(),
        clock.clone(),
        &crate::http::staff_callback_base(&settings.server.public_url),
        crate::identity::upstream::DEFAULT_UPSTREAM_TIMEOUT,
    ));
    let payment_callbacks = crate::payment::callbacks::PaymentCallbacks::new(
        db.clone(),
        audit.clone(),
        clock.clone(),
        registry.clone(),
        signals.clone(),
        payment_providers.clone(),
    );
    let client_budgets = crate::http::ClientBudgets::new(&settings);
    let health = crate::health::Health::new(
        registry.clone(),
        upstreams.clone(),
        payment_providers.clone(),
        db.clone(),
        clock.clone(),
    );
    let renewed = reload::Renewed {
        registry: registry.clone(),
        providers: payment_providers.clone(),
        http: http.clone(),
        upstreams: vec![upstreams.clone(), staff_upstreams.clone()],
        audit: audit.clone(),
        clock: clock.clone(),
    };
    let reload = Arc::new(reload::RegistryReloader::new(&settings, renewed));
    let transfer = crate::transfer::TransferService::new(
        db.clone(),
        keys.clone(),
        clock.clone(),
        settings.transfer.clone(),
        &issuer,
    )
    .with_callback_reach(crate::http_client::Reach::for_development(settings.dev.simulators));
    Ok(AppState::new(Shared {
        settings,
        registry,
        reload,
        db,
        keys,
        audit,
        clock,
        readiness: Readiness::default(),
        http,
        guarded_http,
        tokens,
        login,
        grants,
        client_auth,
        upstreams,
        payment_providers,
        payments,
        payment_signals: signals,
        refunds,
        finance,
        staff,
        staff_upstreams,
        payment_callbacks,
        client_budgets,
        health,
        transfer,
    }))
}

/// The relying party towards citizens' and companies' account providers, answering at
/// `/callback/<provider>` (OpenID Connect) and `/saml/<provider>/acs` (SAML).
fn citizen_upstreams(settings: &Settings, http: &reqwest::Client, clock: &SharedClock) -> Arc<Upstreams> {
    Arc::new(Upstreams::with_saml_base(
        http.clone(),
        clock.clone(),
        &crate::http::oidc::upstream_callback_base(&settings.server.public_url),
        &crate::http::saml_base(&settings.server.public_url),
        crate::identity::upstream::DEFAULT_UPSTREAM_TIMEOUT,
    ))
}

/// Reaches the database, applies migrations and makes sure a signing key exists, retrying with
/// backoff while the database is unreachable. Until it succeeds `/readyz` answers 503.
async fn bootstrap(state: AppState, shutdown: CancellationToken) {
    let mut delay = FIRST_RETRY;
    loop {
        match prepare_database(&state).await {
            Ok(applied) => {
                state.readiness.set_ready();
                tracing::info!(database = state.db.backend_name(), migrations_applied = applied, "database ready");
                return;
            }
            Err(e) => {
                tracing::warn!(
                    database = state.db.redacted_url(),
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "database not ready; retrying"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(LONGEST_RETRY);
            }
        }
    }
}

/// Asks the database every second once it is ready, so an outage is logged when it starts (with
/// its cause) and when it ends, once each, whether or not requests or `/readyz` meet it
/// (`Database::probe` does the logging).
async fn watch_database(state: AppState, shutdown: CancellationToken) {
    tokio::select! {
        () = state.readiness.wait() => {}
        () = shutdown.cancelled() => return,
    }
    loop {
        // The outcome is logged by the probe on a change; nothing else to do with it here.
        let _ = state.db.probe(WATCH_TIMEOUT).await;
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Removes expired logins (with any identity still in them), pushed requests, assertion ids and
/// revocations, and finance staff sessions past their lifetime and sign-ins never completed, so
/// personal data outlives its flow by at most one interval (SECURITY.md #24).
async fn purge_expired(state: AppState, shutdown: CancellationToken) {
    tokio::select! {
        () = state.readiness.wait() => {}
        () = shutdown.cancelled() => return,
    }
    loop {
        match state.db.purge_expired(state.clock.now_millis()).await {
            Ok(purged) if purged != Default::default() => tracing::info!(?purged, "purged expired records"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purge of expired records failed; retrying next interval"),
        }
        match state.staff.purge().await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged ended finance staff sessions and sign-ins"),
            Err(e) => tracing::warn!(error = %e, "purge of finance staff sessions failed; retrying next interval"),
        }
        tokio::select! {
            () = tokio::time::sleep(PURGE_INTERVAL) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Reads the signing keys from the database again every `keys.refresh_secs`, so another instance's
/// rotation is published and used here; a failed read keeps the keys in memory (see `keys`). Before
/// each read it runs the rotation schedule (`keys.rotate_after_days`): the instance that finds a key
/// due first under the lock publishes its successor; the others read it here.
async fn refresh_keys(state: AppState, shutdown: CancellationToken) {
    tokio::select! {
        () = state.readiness.wait() => {}
        () = shutdown.cancelled() => return,
    }
    let every = Duration::from_secs(state.settings.keys.refresh_secs.max(1));
    let schedule =
        RotationSchedule::from_settings(state.settings.keys.rotate_after_days, state.settings.keys.publish_ahead_secs);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        if let Some(schedule) = schedule {
            match state.keys.rotate_due(schedule).await {
                Ok(rotations) => {
                    for rotation in rotations {
                        tracing::info!(
                            kid = %rotation.new_kid,
                            retired = ?rotation.retired,
                            active_from_ms = rotation.active_from,
                            "scheduled key rotation: new key published, it signs from active_from on"
                        );
                    }
                }
                // Tried again at the next tick; a database outage is logged by the watch already.
                Err(e) => tracing::warn!(error = %e, "scheduled key rotation failed"),
            }
        }
        // A failure is logged by `refresh` once per outage.
        state.keys.refresh().await.ok();
    }
}

/// Asks the dependencies every `status.check_interval_secs` for the report `GET /status` serves (see
/// `health`), from the moment the database is ready (until then `GET /status` asks on each request,
/// and says the database is down).
async fn watch_dependencies(state: AppState, shutdown: CancellationToken) {
    tokio::select! {
        () = state.readiness.wait() => {}
        () = shutdown.cancelled() => return,
    }
    let interval = Duration::from_secs(state.settings.status.check_interval_secs.max(1));
    state.health.watch(interval, shutdown).await;
}

/// The dependency checks for `pforte status`, built as the service builds them, without serving.
pub fn dependency_health(settings: &Settings, registry: Registry) -> anyhow::Result<crate::health::Health> {
    let db = Database::connect_lazy(&settings.database)?;
    let http = crate::http_client::outbound_client()?;
    let clock: SharedClock = Arc::new(SystemClock);
    let upstreams = citizen_upstreams(settings, &http, &clock);
    let providers = crate::payment::provider::Providers::build(&registry, &http);
    let registry = SharedRegistry::new(registry);
    Ok(crate::health::Health::new(registry, upstreams, providers, db, clock))
}

/// Delivers notifications to online services once the database is ready (see `payment::notify`).
async fn deliver_notifications(state: AppState, shutdown: CancellationToken) {
    tokio::select! {
        () = state.readiness.wait() => {}
        () = shutdown.cancelled() => return,
    }
    let notifier = crate::payment::notify::Notifier::new(
        state.db.clone(),
        state.registry.clone(),
        state.guarded_http.clone(),
        state.clock.clone(),
    );
    notifier.run(shutdown).await;
}

/// Delivers Datentransfer callbacks to destinations' Fachverfahren (see `transfer::CallbackWorker`).
async fn deliver_transfer_callbacks(state: AppState, shutdown: CancellationToken) {
    tokio::select! {
        () = state.readiness.wait() => {}
        () = shutdown.cancelled() => return,
    }
    let worker = crate::transfer::CallbackWorker::new(
        state.db.clone(),
        state.registry.clone(),
        state.guarded_http.clone(),
        state.clock.clone(),
        state.keys.master(),
    );
    worker.run(shutdown).await;
}

/// Datentransfer's deadlines and retention (see `transfer::RetentionWorker`).
async fn retain_transfers(state: AppState, shutdown: CancellationToken) {
    tokio::select! {
        () = state.readiness.wait() => {}
        () = shutdown.cancelled() => return,
    }
    let worker = crate::transfer::RetentionWorker::new(state.transfer.clone(), state.registry.clone());
    worker.run(shutdown).await;
}

/// Reads open payments' status at their providers and fails expired ones (see `payment::worker`).
async fn check_payments(state: AppState, shutdown: CancellationToken) {
    tokio::select! {
        () = state.readiness.wait() => {}
        () = shutdown.cancelled() => return,
    }
    let worker = crate::payment::worker::StatusWorker::new(
        state.db.clone(),
        state.registry.clone(),
        state.payment_signals.clone(),
        state.payment_providers.clone(),
        state.clock.clone(),
    )
    .with_schedule(crate::payment::worker::CheckSchedule::from_settings(&state.settings.payments))
    .with_refunds(state.refunds.clone());
    worker.run(shutdown).await;
}

/// Moves recorded audit events into the hash chain every `audit.chain_interval_ms`. Every instance
/// runs it; the chain lock lets one at a time extend the chain, so another takes over at once when
/// one dies (SECURITY.md #26).
async fn chain_audit_events(state: AppState, shutdown: CancellationToken) {
    tokio::select! {
        () = state.readiness.wait() => {}
        () = shutdown.cancelled() => return,
    }
    let interval = Duration::from_millis(state.settings.audit.chain_interval_ms);
    // One line per outage, not one per interval.
    let mut failing = false;
    loop {
        match state.audit.chain_pending().await {
            Ok(_) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "chaining audit events failed; retrying every interval");
            }
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Encrypts personal data of payments written before it was kept apart, and purges it after each
/// tenant's retention period (see `payment::retention`, SECURITY.md #24).
async fn retain_personal_data(state: AppState, shutdown: CancellationToken) {
    tokio::select! {
        () = state.readiness.wait() => {}
        () = shutdown.cancelled() => return,
    }
    let worker = crate::payment::retention::Retention::new(
        state.db.clone(),
        state.registry.clone(),
        state.keys.master(),
        state.audit.clone(),
        state.clock.clone(),
    );
    worker.run(shutdown).await;
}

async fn prepare_database(state: &AppState) -> anyhow::Result<usize> {
    let applied = state.db.migrate().await?;
    state.keys.ensure_active(SigningAlg::Es256, "system").await?;
    // Ready means the keys are in memory: from here on the JWKS does not need the database.
    state.keys.refresh().await?;
    let counts = state.registry.current().counts();
    let details = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "migrations_applied": applied,
        "registry": counts.to_string(),
    });
    state.audit.append(AuditEvent::new("service.started", "system", "pforte", details)).await?;
    Ok(applied)
}
