//! The payment provider instances of the running process: one adapter per registered provider,
//! built once from the registry and the shared outbound client and held for the process, so that
//! what an adapter keeps between calls lasts: the OAuth2 client-credentials token, the connection
//! pool (for mutual TLS, the adapter's own client). Every part of payment gets its adapters here.
//!
//! A provider entry that cannot be used keeps its error, and every call for it gets that error, as
//! if the adapter had been built for the call. [`Providers::rebuild`] replaces the whole set, for a
//! registry reload; calls already holding an adapter finish with it. Every adapter is wrapped so
//! that its calls are measured (`measured`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::measured::Measured;
use super::{adapter_for, PaymentAdapter, ProviderError};
use crate::registry::Registry;

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

    /// Replaces every instance with one built from `registry` (a reloaded registry).
    pub fn rebuild(&self, registry: &Registry, http: &reqwest::Client) {
        let fresh = Arc::new(instances(registry, http));
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
    registry
        .payment_providers()
        .map(|provider| {
            // Measured here, once for every caller (`measured`).
            let adapter = adapter_for(provider, http).map(|adapter| Measured::wrap(provider.id.as_str(), adapter));
            if let Err(e) = &adapter {
                tracing::warn!(provider = provider.id.as_str(), error = %e, "payment provider entry cannot be used");
            }
            (provider.id.as_str().to_owned(), adapter)
        })
        .collect()
}
