//! The registry in use, shared by every service of the running process and replaced as a whole by a
//! reload. An operation takes one snapshot ([`SharedRegistry::current`]) at its start and works with
//! it to the end, so a reload in between never gives it half of one registry and half of another.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Registry;

/// A cheap handle on the registry in use; clones share it.
#[derive(Clone)]
pub struct SharedRegistry(Arc<ArcSwap<Registry>>);

impl std::fmt::Debug for SharedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SharedRegistry").field(&self.current().counts()).finish()
    }
}

impl SharedRegistry {
    pub fn new(registry: Registry) -> SharedRegistry {
        SharedRegistry(Arc::new(ArcSwap::from_pointee(registry)))
    }

    /// The registry in use now. Keep the snapshot for the whole operation rather than asking again.
    pub fn current(&self) -> Arc<Registry> {
        self.0.load_full()
    }

    /// Puts `registry` in use for every operation that starts from now on; returns the one it
    /// replaces, which lives on while operations that started with it hold it.
    pub fn replace(&self, registry: Registry) -> Arc<Registry> {
        self.0.swap(Arc::new(registry))
    }
}

impl From<Registry> for SharedRegistry {
    fn from(registry: Registry) -> Self {
        SharedRegistry::new(registry)
    }
}
