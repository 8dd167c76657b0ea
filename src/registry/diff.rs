//! What a reload changed: per kind of entity, the ids added, removed and changed. An entity changed
//! when its file's bytes or a secret it names did (`check::Fingerprint`); ids only, so the diff can be
//! logged and audited as it is.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use super::types::EntityId;
use super::{EntityKind, Registry};

/// The ids of one kind of entity that a reload added, removed or changed, each sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl KindDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// The ids whose instance must be built anew: added or changed.
    pub fn added_or_changed(&self) -> impl Iterator<Item = &str> {
        self.added.iter().chain(&self.changed).map(String::as_str)
    }
}

/// What changed between the registry in use and the one replacing it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegistryDiff {
    pub clients: KindDiff,
    pub tenants: KindDiff,
    pub identity_providers: KindDiff,
    pub payment_providers: KindDiff,
    pub destinations: KindDiff,
}

impl RegistryDiff {
    pub fn between(old: &Registry, new: &Registry) -> RegistryDiff {
        RegistryDiff {
            clients: kind_diff(old, new, EntityKind::Client),
            tenants: kind_diff(old, new, EntityKind::Tenant),
            identity_providers: kind_diff(old, new, EntityKind::IdentityProvider),
            payment_providers: kind_diff(old, new, EntityKind::PaymentProvider),
            destinations: kind_diff(old, new, EntityKind::Destination),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kinds().iter().all(|(_, diff)| diff.is_empty())
    }

    fn kinds(&self) -> [(&'static str, &KindDiff); 5] {
        [
            ("clients", &self.clients),
            ("tenants", &self.tenants),
            ("identity providers", &self.identity_providers),
            ("payment providers", &self.payment_providers),
            ("destinations", &self.destinations),
        ]
    }
}

/// One line for the log: `clients added [a] changed [b]; payment providers removed [c]`, or `no change`.
impl fmt::Display for RegistryDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no change");
        }
        let mut first = true;
        for (name, diff) in self.kinds().into_iter().filter(|(_, diff)| !diff.is_empty()) {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            f.write_str(name)?;
            for (what, ids) in [("added", &diff.added), ("removed", &diff.removed), ("changed", &diff.changed)] {
                if !ids.is_empty() {
                    write!(f, " {what} [{}]", ids.join(", "))?;
                }
            }
        }
        Ok(())
    }
}

fn kind_diff(old: &Registry, new: &Registry, kind: EntityKind) -> KindDiff {
    let ids = |registry: &Registry| -> BTreeSet<EntityId> {
        registry.fingerprints.keys().filter(|(k, _)| *k == kind).map(|(_, id)| id.clone()).collect()
    };
    let (before, after) = (ids(old), ids(new));
    let strings = |ids: Vec<&EntityId>| ids.into_iter().map(|id| id.as_str().to_owned()).collect();
    KindDiff {
        added: strings(after.difference(&before).collect()),
        removed: strings(before.difference(&after).collect()),
        changed: strings(
            before
                .intersection(&after)
                .filter(|id| {
                    let key = (kind, (*id).clone());
                    old.fingerprints.get(&key) != new.fingerprints.get(&key)
                })
                .collect(),
        ),
    }
}
