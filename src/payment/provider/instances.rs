//! The payment provider instances of the running process: one adapter per registered provider,
//! built once from the registry and the shared outbound client and held for the process, so that
//! what an adapter keeps between calls lasts: the OAuth2 client-credentials token, the connection
//! pool (for mutual TLS, the adapter's own client). Every part of payment gets its adapters here.
//!
//! A provider entry that cannot be used keeps its error, and every call for it gets that error, as
//! if the adapter had been built for the call. [`Providers::apply`] takes a registry reload in: only
//! the providers whose file changed (or that are new) get a new adapter, the others keep theirs with
//! its token and pool, and removed ones are dropped; calls already holding an adapter finish with it.
//! Every adapter is wrapped so that its calls are measured (`measured`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::measured::Measured;
use super::{adapter_for, PaymentAdapter, ProviderError};
use crate::registry::{KindDiff, PaymentProvider, Registry};

type Instances = HashMap<String, Result<Arc<dyn PaymentAdapter>, ProviderError>>;

/// A cheap handle on the current set of provider instances; clones share it.
#[derive(Clone)]
pub struct Providers {
    current: Arc<RwLock<Arc<Instances>>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers").field("instances", &self.instances().len()).finish()
    }
}

impl Providers {
    /// Builds an adapter for every payment provider in `registry`.
    pub fn build(registry: &Registry, http: &reqwest::Client) -> Providers {
        Providers { current: Arc::new(RwLock::new(Arc::new(instances(registry, http)))) }
    }

    /// Takes in a reloaded `registry` whose payment providers changed as `diff` says: builds the added
    /// and changed ones anew, keeps the adapter of every other one, drops the removed ones. Called
    /// before the registry is swapped, so a payment routed by the new registry finds its adapter.
    pub fn apply(&self, registry: &Registry, diff: &KindDiff, http: &reqwest::Client) {
        let old = self.instances();
        let rebuild: std::collections::HashSet<&str> = diff.added_or_changed().collect();
        let fresh: Instances = registry
            .payment_providers()
            .map(|provider| {
                let id = provider.id.as_str();
                let instance = match old.get(id) {
                    Some(kept) if !rebuild.contains(id) => kept.clone(),
                    _ => instance(provider, http),
                };
                (id.to_owned(), instance)
            })
            .collect();
        let fresh = Arc::new(fresh);
        match self.current.write() {
            Ok(mut current) => *current = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
    }

    /// The adapter of provider `provider_id`, or why it cannot be used.
    pub fn adapter(&self, provider_id: &str) -> Result<Arc<dyn PaymentAdapter>, ProviderError> {
        match self.instances().get(provider_id) {
            Some(instance) => instance.clone(),
            None => Err(ProviderError::Misconfigured(format!("{provider_id}: not a registered payment provider"))),
        }
    }

    fn instances(&self) -> Arc<Instances> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn instances(registry: &Registry, http: &reqwest::Client) -> Instances {
    registry.payment_providers().map(|provider| (provider.id.as_str().to_owned(), instance(provider, http))).collect()
}

fn instance(provider: &PaymentProvider, http: &reqwest::Client) -> Result<Arc<dyn PaymentAdapter>, ProviderError> {
    // Traced and measured here, once for every caller (`measured`).
    let adapter = adapter_for(provider, http).map(|adapter| Measured::wrap(provider.id.as_str(), adapter));
    if let Err(e) = &adapter {
        tracing::warn!(provider = provider.id.as_str(), error = %e, "payment provider entry cannot be used");
    }
    adapter
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::RegistrySettings;
    use crate::registry::RegistryDiff;

    fn provider_file(name: &str) -> String {
        format!(
            "kind = \"xbezahldienste\"\ndisplay_name = \"{name}\"\nbase_url = \"https://pay.example.org/api\"\n\n\
             [auth]\nmethod = \"none\"\n"
        )
    }

    fn load(dir: &Path) -> Result<Registry, Box<dyn std::error::Error>> {
        let settings = RegistrySettings {
            providers: dir.join("providers"),
            clients: dir.join("clients"),
            tenants: dir.join("tenants"),
        };
        let public_url = url::Url::parse("http://localhost:8080")?;
        Ok(Registry::load(&settings, &public_url, true).map_err(|problems| problems.to_string())?)
    }

    #[test]
    fn a_reload_builds_only_the_providers_whose_file_changed() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let payment = dir.path().join("providers/payment");
        for folder in [&payment, &dir.path().join("clients"), &dir.path().join("tenants")] {
            std::fs::create_dir_all(folder)?;
        }
        std::fs::write(payment.join("kept.toml"), provider_file("Kept"))?;
        std::fs::write(payment.join("changed.toml"), provider_file("Before"))?;
        std::fs::write(payment.join("removed.toml"), provider_file("Removed"))?;
        let http = reqwest::Client::new();
        let before = load(dir.path())?;
        let providers = Providers::build(&before, &http);
        let (kept, changed) = (providers.adapter("kept")?, providers.adapter("changed")?);

        std::fs::write(payment.join("changed.toml"), provider_file("After"))?;
        std::fs::remove_file(payment.join("removed.toml"))?;
        std::fs::write(payment.join("added.toml"), provider_file("Added"))?;
        let after = load(dir.path())?;
        providers.apply(&after, &RegistryDiff::between(&before, &after).payment_providers, &http);

        assert!(Arc::ptr_eq(&kept, &providers.adapter("kept")?), "an unchanged provider keeps its adapter");
        assert!(!Arc::ptr_eq(&changed, &providers.adapter("changed")?), "a changed provider gets a new adapter");
        assert!(providers.adapter("added").is_ok(), "an added provider gets an adapter");
        assert!(providers.adapter("removed").is_err(), "a removed provider's adapter is gone");
        Ok(())
    }
}
