//! The registry: who may use the broker. Online services (clients), authorities (tenants) and upstream
//! identity and payment providers are TOML files, one per entity, the file stem being its id:
//!
//! - `<providers>/identity/<id>.toml`, `<providers>/payment/<id>.toml`
//! - `<tenants>/<id>.toml`, `<clients>/<id>.toml`
//! - `<transfer.destinations>/<destinationId>.toml` (Datentransfer destinations, `destination.rs`)
//!
//! All files are read at start and checked as a whole, references between them included; every problem
//! names its file and key, and all of them are reported in one go. Secrets are resolved while loading, so
//! a missing variable stops the start rather than the first login. URL values may contain
//! `{public_url}`, which is replaced by the configured public URL.
//!
//! A running instance reads them again on a reload (`SharedRegistry`, `reload`): a registry that loads
//! without a problem replaces the one in use as a whole, and what changed is told per entity id
//! (`RegistryDiff`).

mod check;
mod client;
mod destination;
mod destination_keys;
mod diff;
mod files;
mod identity;
mod payment;
pub mod reload;
mod routing;
mod saml;
pub mod saml_metadata;
mod settlement;
mod shared;
mod tenant;
mod toml_error;
mod types;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use url::Url;

pub use check::PUBLIC_URL_PLACEHOLDER;
pub use client::{Client, ClientAuth, ClientKeys, GrantType, IdTokenAlg, Scope};
pub use destination::{
    Destination, DestinationCallback, DestinationService, DestinationStatus, SchemaMimeType, SubmissionSchema,
};
pub use destination_keys::{DestinationKey, KeyUse};
pub use diff::{KindDiff, RegistryDiff};
pub use identity::{
    IdentityProvider, IdentityProviderKind, OidcUpstream, UpstreamClientAuth, UpstreamProtocol, PFORTE_CLAIMS,
};
pub use payment::{PaymentAuth, PaymentProvider, PaymentProviderKind};
pub use routing::RoutingRule;
pub use saml::{rsa_private_key, AkdbExtension, MetadataSource, RequestBinding, SamlUpstream};
pub use settlement::{Column, DecimalSeparator, SettlementColumns, SettlementFormat, SettlementKind};
pub use shared::SharedRegistry;
pub use tenant::{StaffAccess, Tenant, TenantFinance, TenantPayment, DEFAULT_RETENTION_DAYS};
pub use types::{AccountType, ClientAuthMethod, EntityId, HttpUrl, Level, RedirectUri};

use self::check::{FileCheck, Fingerprint, LoadContext};
use self::destination_keys::TrustAnchors;
use self::files::{EntityFile, IfMissing};
use crate::config::{Problems, RegistrySettings, TransferSettings};

#[derive(Debug, Default)]
pub struct Registry {
    identity_providers: BTreeMap<EntityId, IdentityProvider>,
    payment_providers: BTreeMap<EntityId, PaymentProvider>,
    tenants: BTreeMap<EntityId, Tenant>,
    clients: BTreeMap<EntityId, Client>,
    destinations: BTreeMap<EntityId, Destination>,
    /// originatorId → client id.
    originators: BTreeMap<EntityId, EntityId>,
    /// What each entity was loaded from, for telling a reload what changed.
    fingerprints: BTreeMap<(EntityKind, EntityId), Fingerprint>,
}

/// How many entities of each kind were loaded, for the startup log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryCounts {
    pub identity_providers: usize,
    pub payment_providers: usize,
    pub tenants: usize,
    pub clients: usize,
}

impl fmt::Display for RegistryCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} identity providers, {} payment providers, {} tenants, {} clients",
            self.identity_providers, self.payment_providers, self.tenants, self.clients
        )
    }
}

impl Registry {
    /// Reads and checks every registry file except destinations. `dev_simulators` allows `plain:` secrets
    /// and the development simulators; without it they are problems.
    pub fn load(settings: &RegistrySettings, public_url: &Url, dev_simulators: bool) -> Result<Registry, Problems> {
        Self::load_with_destinations(settings, None, public_url, dev_simulators)
    }

    /// Reads and checks every registry file, with the Datentransfer destinations of `transfer` when given.
    pub fn load_with_destinations(
        settings: &RegistrySettings,
        transfer: Option<&TransferSettings>,
        public_url: &Url,
        dev_simulators: bool,
    ) -> Result<Registry, Problems> {
        let context = LoadContext::new(public_url, dev_simulators);
        let mut problems = Problems::default();
        let mut fingerprints = BTreeMap::new();
        let identity_dir = settings.providers.join("identity");
        let payment_dir = settings.providers.join("payment");
        let mut load = Loader { context: &context, problems: &mut problems, fingerprints: &mut fingerprints };

        let identity_providers =
            load.kind(&identity_dir, IfMissing::Empty, EntityKind::IdentityProvider, identity::parse);
        let identity_providers: BTreeMap<_, _> =
            identity_providers.into_iter().map(|(_, p)| (p.id.clone(), p)).collect();
        let payment_providers = load.kind(&payment_dir, IfMissing::Empty, EntityKind::PaymentProvider, payment::parse);
        let payment_providers: BTreeMap<_, _> = payment_providers.into_iter().map(|(_, p)| (p.id.clone(), p)).collect();

        let tenants = load.kind(&settings.tenants, IfMissing::Problem, EntityKind::Tenant, tenant::parse);
        for (source, tenant) in &tenants {
            let provider = &tenant.payment.provider;
            if !payment_providers.contains_key(provider) {
                problems.push(source, "payment.provider", not_registered("payment provider", provider, &payment_dir));
            }
            if let Some(staff) = &tenant.finance.staff {
                match identity_providers.get(&staff.provider) {
                    None => problems.push(
                        source,
                        "finance.staff.provider",
                        not_registered("identity provider", &staff.provider, &identity_dir),
                    ),
                    // The staff sign-in answers at its own OpenID Connect callback; it has no ACS.
                    Some(idp) if idp.saml().is_some() => problems.push(
                        source,
                        "finance.staff.provider",
                        format!(
                            "identity provider `{}` is a SAML provider; finance staff sign in over OpenID Connect only",
                            staff.provider
                        ),
                    ),
                    Some(idp) if !idp.claims.values().any(|pforte| *pforte == staff.claim) => problems.push(
                        source,
                        "finance.staff.claim",
                        format!("identity provider `{}` maps no claim onto `{}`", staff.provider, staff.claim),
                    ),
                    Some(_) => {}
                }
            }
            for (index, rule) in tenant.payment.rules.iter().enumerate() {
                if !payment_providers.contains_key(&rule.provider) {
                    let key = format!("payment.rules[{index}].provider");
                    problems.push(source, key, not_registered("payment provider", &rule.provider, &payment_dir));
                }
            }
        }
        let tenants: BTreeMap<_, _> = tenants.into_iter().map(|(_, t)| (t.id.clone(), t)).collect();

        let mut load = Loader { context: &context, problems: &mut problems, fingerprints: &mut fingerprints };
        let clients = load.kind(&settings.clients, IfMissing::Problem, EntityKind::Client, client::parse);
        let mut originators: BTreeMap<String, (EntityId, &str)> = BTreeMap::new();
        for (source, client) in &clients {
            check_client_references(source, client, &identity_providers, &tenants, settings, &mut problems);
            let Some(originator) = &client.originator_id else { continue };
            // Originator ids are URL path segments; ones that differ only in case invite mix-ups.
            match originators.get(&originator.as_str().to_ascii_lowercase()) {
                Some((other, other_source)) => problems.push(
                    source,
                    "originator_id",
                    format!("`{originator}` is already the originator id of client `{other}` ({other_source})"),
                ),
                None => {
                    originators.insert(originator.as_str().to_ascii_lowercase(), (client.id.clone(), source));
                }
            }
        }
        let originators =
            clients.iter().filter_map(|(_, c)| c.originator_id.clone().map(|o| (o, c.id.clone()))).collect();
        let clients: BTreeMap<_, _> = clients.into_iter().map(|(_, c)| (c.id.clone(), c)).collect();

        let mut destinations = BTreeMap::new();
        if let Some(transfer) = transfer {
            let anchors = TrustAnchors::load(transfer.trust_anchors.as_deref(), &mut problems);
            let mut load = Loader { context: &context, problems: &mut problems, fingerprints: &mut fingerprints };
            let loaded = load.kind(&transfer.destinations, IfMissing::Empty, EntityKind::Destination, |file, check| {
                destination::parse(file, check, &anchors)
            });
            for (source, destination) in loaded {
                check_destination_references(&source, &destination, &tenants, &clients, settings, &mut problems);
                destinations.insert(destination.id.clone(), destination);
            }
        }

        problems.into_result(Registry {
            identity_providers,
            payment_providers,
            tenants,
            clients,
            destinations,
            originators,
            fingerprints,
        })
    }

    pub fn identity_provider(&self, id: &str) -> Option<&IdentityProvider> {
        self.identity_providers.get(id)
    }

    pub fn payment_provider(&self, id: &str) -> Option<&PaymentProvider> {
        self.payment_providers.get(id)
    }

    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.get(id)
    }

    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.get(id)
    }

    pub fn destination(&self, id: &str) -> Option<&Destination> {
        self.destinations.get(id)
    }

    pub fn destinations(&self) -> impl Iterator<Item = &Destination> {
        self.destinations.values()
    }

    pub fn client_by_originator(&self, originator_id: &str) -> Option<&Client> {
        self.originators.get(originator_id).and_then(|client| self.clients.get(client))
    }

    pub fn identity_providers(&self) -> impl Iterator<Item = &IdentityProvider> {
        self.identity_providers.values()
    }

    pub fn payment_providers(&self) -> impl Iterator<Item = &PaymentProvider> {
        self.payment_providers.values()
    }

    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }

    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.values()
    }

    pub fn counts(&self) -> RegistryCounts {
        RegistryCounts {
            identity_providers: self.identity_providers.len(),
            payment_providers: self.payment_providers.len(),
            tenants: self.tenants.len(),
            clients: self.clients.len(),
        }
    }
}

/// Which kind of registry file [`parse_entity_text`] reads; also the kinds a [`RegistryDiff`] tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityKind {
    IdentityProvider,
    PaymentProvider,
    Tenant,
    Client,
    Destination,
}

/// Reads one registry file's text as `load` reads a file of that kind (TOML, then every rule of the
/// entity), without the cross-file checks: the entry the fuzz targets (`fuzz/`) call. Returns how
/// many problems were found; a valid file has none.
pub fn parse_entity_text(kind: EntityKind, text: &str) -> usize {
    let Ok(public_url) = Url::parse("http://localhost:8080") else { return 0 };
    let context = LoadContext::new(&public_url, true);
    let mut problems = Problems::default();
    fn one<F: DeserializeOwned, T>(
        text: &str,
        context: &LoadContext,
        problems: &mut Problems,
        parse: fn(EntityFile<F>, &mut FileCheck<'_>) -> Option<T>,
    ) {
        let source = "fuzz.toml".to_owned();
        let Some(contents) = toml_error::parse::<F>(text).map_err(|p| problems.push(&source, p.key, p.reason)).ok()
        else {
            return;
        };
        let Ok(id) = EntityId::parse("fuzz") else { return };
        let mut check = FileCheck::new(&source, context, problems);
        parse(EntityFile { id, source: source.clone(), contents, digest: [0; 32] }, &mut check);
    }
    match kind {
        EntityKind::IdentityProvider => one(text, &context, &mut problems, identity::parse),
        EntityKind::PaymentProvider => one(text, &context, &mut problems, payment::parse),
        EntityKind::Tenant => one(text, &context, &mut problems, tenant::parse),
        EntityKind::Client => one(text, &context, &mut problems, client::parse),
        EntityKind::Destination => one(text, &context, &mut problems, parse_destination_without_anchors),
    }
    problems.0.len()
}

/// A destination file on its own, as the fuzz targets read it: no trust anchors, so only
/// self-signed development keys pass.
fn parse_destination_without_anchors(
    file: EntityFile<destination::DestinationFile>,
    check: &mut FileCheck<'_>,
) -> Option<Destination> {
    destination::parse(file, check, &TrustAnchors::default())
}

/// What one load reads every directory with.
struct Loader<'a> {
    context: &'a LoadContext,
    problems: &'a mut Problems,
    fingerprints: &'a mut BTreeMap<(EntityKind, EntityId), Fingerprint>,
}

impl Loader<'_> {
    /// Reads one directory and checks each file on its own; returns each valid entity with its file,
    /// and notes its fingerprint.
    fn kind<F: DeserializeOwned, T>(
        &mut self,
        dir: &Path,
        if_missing: IfMissing,
        kind: EntityKind,
        mut parse: impl FnMut(EntityFile<F>, &mut FileCheck<'_>) -> Option<T>,
    ) -> Vec<(String, T)> {
        let files = files::read_entity_files::<F>(dir, if_missing, self.problems);
        let mut entities = Vec::new();
        for file in files {
            let source = file.source.clone();
            let (id, digest) = (file.id.clone(), file.digest);
            let mut check = FileCheck::new(&source, self.context, self.problems);
            if let Some(entity) = parse(file, &mut check) {
                self.fingerprints.insert((kind, id), check.fingerprint(&digest));
                entities.push((source, entity));
            }
        }
        entities
    }
}

fn check_client_references(
    source: &str,
    client: &Client,
    identity_providers: &BTreeMap<EntityId, IdentityProvider>,
    tenants: &BTreeMap<EntityId, Tenant>,
    settings: &RegistrySettings,
    problems: &mut Problems,
) {
    for (index, id) in client.identity_providers.iter().enumerate() {
        let key = format!("identity_providers[{index}]");
        match identity_providers.get(id) {
            None => problems.push(
                source,
                key,
                not_registered("identity provider", id, &settings.providers.join("identity")),
            ),
            // No login through this provider could ever satisfy the client, so the entry is a mistake.
            Some(provider) if provider.highest_level().is_none_or(|highest| highest < client.min_level) => problems
                .push(
                    source,
                    key,
                    format!(
                        "identity provider `{id}` proves at most level {}, below this client's min_level {}",
                        provider.highest_level().unwrap_or_default(),
                        client.min_level
                    ),
                ),
            Some(_) => {}
        }
    }
    for (index, id) in client.tenants.iter().enumerate() {
        if !tenants.contains_key(id) {
            problems.push(source, format!("tenants[{index}]"), not_registered("tenant", id, &settings.tenants));
        }
    }
}

/// A destination's tenant and its subscriber must be registered; the subscriber fetches with an access
/// token of its own, so it must be allowed `client_credentials`.
fn check_destination_references(
    source: &str,
    destination: &Destination,
    tenants: &BTreeMap<EntityId, Tenant>,
    clients: &BTreeMap<EntityId, Client>,
    settings: &RegistrySettings,
    problems: &mut Problems,
) {
    if !tenants.contains_key(&destination.tenant) {
        problems.push(source, "tenant", not_registered("tenant", &destination.tenant, &settings.tenants));
    }
    match clients.get(&destination.subscriber_client) {
        None => problems.push(
            source,
            "subscriber_client",
            not_registered("client", &destination.subscriber_client, &settings.clients),
        ),
        Some(client) if !client.grant_types.contains(&GrantType::ClientCredentials) => problems.push(
            source,
            "subscriber_client",
            format!("client `{}` may not use client_credentials, which the subscriber API needs", client.id),
        ),
        Some(_) => {}
    }
}

fn not_registered(kind: &str, id: &EntityId, dir: &Path) -> String {
    format!("there is no valid {kind} `{id}` ({} is missing or has problems)", dir.join(format!("{id}.toml")).display())
}

#[cfg(test)]
mod tests;
