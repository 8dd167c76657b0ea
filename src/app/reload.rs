//! Carries out a registry reload, whichever trigger asked for it (SIGHUP and `pforte reload` through
//! `cli`, `POST /reload` through `http::admin`): reads and checks every registry file as a start does,
//! and only when nothing is wrong puts the new registry in use, rebuilds the payment provider
//! instances whose file changed, forgets the discovery of identity providers that changed, and audits
//! what changed (ids only). On any problem the registry in use stays as it was; every problem is
//! logged, and the refusal is counted and audited.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;
use url::Url;

use crate::audit::{AuditEvent, AuditLog};
use crate::clock::SharedClock;
use crate::config::{Problems, RegistrySettings, Settings};
use crate::identity::upstream::Upstreams;
use crate::payment::provider::Providers;
use crate::registry::reload::{Reload, ReloadCounts, ReloadFuture, ReloadResult, ReloadTrigger};
use crate::registry::{Registry, RegistryDiff, SharedRegistry};

/// What a reload reads the files with and what it renews.
pub(super) struct RegistryReloader {
    settings: RegistrySettings,
    transfer: crate::config::TransferSettings,
    public_url: Url,
    dev_simulators: bool,
    registry: SharedRegistry,
    providers: Providers,
    http: reqwest::Client,
    /// Citizens' and finance staff's relying parties, each with its own discovery cache.
    upstreams: Vec<Arc<Upstreams>>,
    audit: AuditLog,
    clock: SharedClock,
    counts: ReloadCounts,
    /// One reload at a time, so each compares against the registry the one before put in use.
    running: tokio::sync::Mutex<()>,
}

/// The services a reload renews, as `app` built them.
pub(super) struct Renewed {
    pub registry: SharedRegistry,
    pub providers: Providers,
    pub http: reqwest::Client,
    pub upstreams: Vec<Arc<Upstreams>>,
    pub audit: AuditLog,
    pub clock: SharedClock,
}

impl RegistryReloader {
    /// Reads the files as `settings` say, as the start did (same public URL, same simulators rule).
    pub(super) fn new(settings: &Settings, renewed: Renewed) -> RegistryReloader {
        let Renewed { registry, providers, http, upstreams, audit, clock } = renewed;
        RegistryReloader {
            settings: settings.registry.clone(),
            transfer: settings.transfer.clone(),
            public_url: settings.server.public_url.clone(),
            dev_simulators: settings.dev.simulators,
            registry,
            providers,
            http,
            upstreams,
            audit,
            clock,
            counts: ReloadCounts::default(),
            running: tokio::sync::Mutex::new(()),
        }
    }
}

impl Reload for RegistryReloader {
    fn reload(&self, trigger: ReloadTrigger) -> ReloadFuture<'_> {
        Box::pin(self.run(trigger))
    }

    fn counts(&self) -> &ReloadCounts {
        &self.counts
    }
}

impl RegistryReloader {
    async fn run(&self, trigger: ReloadTrigger) -> ReloadResult {
        let _one_at_a_time = self.running.lock().await;
        let (settings, transfer, public_url, dev_simulators) =
            (self.settings.clone(), self.transfer.clone(), self.public_url.clone(), self.dev_simulators);
        // Reading files and secret files blocks; it does so off the threads that serve requests.
        let loaded = tokio::task::spawn_blocking(move || {
            Registry::load_with_destinations(&settings, Some(&transfer), &public_url, dev_simulators)
        })
        .await
        .unwrap_or_else(|e| {
            let mut problems = Problems::default();
            problems.push("registry", "", format!("reading the registry stopped: {e}"));
            Err(problems)
        });
        match loaded {
            Ok(registry) => Ok(self.put_in_use(trigger, registry).await),
            Err(problems) => Err(self.refuse(trigger, problems).await),
        }
    }

    async fn put_in_use(&self, trigger: ReloadTrigger, registry: Registry) -> RegistryDiff {
        let diff = RegistryDiff::between(&self.registry.current(), &registry);
        let counts = registry.counts();
        // Adapters first: a payment the new registry routes to a new provider finds its adapter.
        self.providers.apply(&registry, &diff.payment_providers, &self.http);
        // Operations that took the old registry finish with it; every one starting now takes this one.
        self.registry.replace(registry);
        let idps = &diff.identity_providers;
        for id in idps.changed.iter().chain(&idps.removed) {
            for upstreams in &self.upstreams {
                upstreams.forget(id);
            }
        }
        self.counts.record_success();
        crate::telemetry::metrics::registry_reload(true);
        tracing::info!(trigger = trigger.as_str(), changes = %diff, registry = %counts, "registry reloaded");
        let details = json!({ "trigger": trigger.as_str(), "changes": diff, "registry": counts.to_string() });
        let event = AuditEvent::new("registry.reloaded", "operator", "registry", details);
        if let Err(e) = self.audit.append(event).await {
            // The new registry stays in use: a reload that takes a client out must work while the
            // database is away. The log keeps what the audit log could not.
            tracing::error!(error = %e, changes = %diff, "registry reloaded, but its audit event could not be written");
        }
        diff
    }

    async fn refuse(&self, trigger: ReloadTrigger, problems: Problems) -> Problems {
        self.counts.record_failure(self.clock.now_millis(), problems.0.len());
        crate::telemetry::metrics::registry_reload(false);
        for problem in &problems.0 {
            tracing::warn!(
                file = %problem.source,
                key = %problem.key,
                reason = %problem.reason,
                "registry reload: problem"
            );
        }
        tracing::error!(
            trigger = trigger.as_str(),
            problems = problems.0.len(),
            "registry reload refused; the registry in use stays as it was"
        );
        let files: BTreeSet<&str> = problems.0.iter().map(|p| p.source.as_str()).collect();
        let details = json!({ "trigger": trigger.as_str(), "problems": problems.0.len(), "files": files });
        let event = AuditEvent::new("registry.reload_refused", "operator", "registry", details);
        if let Err(e) = self.audit.append(event).await {
            tracing::error!(error = %e, "registry reload refused, and its audit event could not be written");
        }
        problems
    }
}
