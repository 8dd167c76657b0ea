//! The questions [`Health`](super::Health) asks each kind of dependency, and which authority each
//! payment provider is asked about.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{OutboxHealth, State, OUTBOX_BACKLOG_AFTER};
use crate::clock::Clock;
use crate::payment::provider::{PaymentAdapter, ProviderError, Providers};
use crate::registry::Registry;
use crate::store::Database;

/// How many status calls run at once for one payment provider.
const CALLS_AT_ONCE: usize = 8;

/// One status call of a payment provider: about authority `tenant`, as online service `originator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentCheck {
    pub tenant: String,
    pub originator: String,
    pub status: State,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
}

/// A pair a payment provider is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    tenant: String,
    originator: String,
}

/// Runs `work` and measures it in whole milliseconds of real time.
pub(super) async fn timed<T>(work: impl Future<Output = T>) -> (T, u64) {
    let started = Instant::now();
    let outcome = work.await;
    (outcome, u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
}

/// For each payment provider, the authorities routed to it (by default or by a rule), each with the
/// first online service (by originatorId) that may pay there through it: the provider knows the pair
/// only if payments can reach it that way. One call per authority, not per service: 60 authorities
/// are 60 calls a round, 300 services would not add any.
pub(super) fn routes(registry: &Registry) -> BTreeMap<String, Vec<Route>> {
    let mut originators: Vec<(&str, &crate::registry::Client)> = registry
        .clients()
        .filter_map(|client| client.originator_id.as_ref().map(|originator| (originator.as_str(), client)))
        .collect();
    originators.sort_by_key(|(originator, _)| *originator);
    let mut routes: BTreeMap<String, Vec<Route>> = BTreeMap::new();
    for tenant in registry.tenants() {
        let payment = &tenant.payment;
        let providers = std::iter::once(&payment.provider).chain(payment.rules.iter().map(|rule| &rule.provider));
        for provider in providers {
            let taken = routes.get(provider.as_str()).is_some_and(|r| r.iter().any(|r| r.tenant == tenant.id.as_str()));
            if taken {
                continue;
            }
            // A rule limited to some services reaches the provider only for those.
            let reaches = |originator: &str| {
                *provider == payment.provider
                    || payment.rules.iter().any(|rule| {
                        rule.provider == *provider
                            && (rule.originators.is_empty() || rule.originators.iter().any(|o| o == originator))
                    })
            };
            let first = originators
                .iter()
                .find(|(originator, client)| client.may_act_for(tenant.id.as_str()) && reaches(originator));
            if let Some((originator, _)) = first {
                routes
                    .entry(provider.to_string())
                    .or_default()
                    .push(Route { tenant: tenant.id.to_string(), originator: (*originator).to_owned() });
            }
        }
    }
    routes
}

/// Asks provider `provider_id` about each of its routes, a few at a time.
pub(super) async fn payment_provider(providers: &Providers, provider_id: &str, routes: &[Route]) -> Vec<PaymentCheck> {
    use futures_util::stream::{self, StreamExt};

    let adapter = providers.adapter(provider_id);
    // Collected first, as in `Health::check_identity_providers`.
    let checks: Vec<_> = routes.iter().map(|route| check_route(adapter.clone(), route)).collect();
    stream::iter(checks).buffered(CALLS_AT_ONCE).collect().await
}

async fn check_route(adapter: Result<Arc<dyn PaymentAdapter>, ProviderError>, route: &Route) -> PaymentCheck {
    let (outcome, latency_ms) = match adapter {
        Ok(adapter) => timed(adapter.probe(&route.originator, &route.tenant)).await,
        Err(e) => (Err(e), 0),
    };
    let (status, error) = match outcome {
        Ok(()) => (State::Up, None),
        Err(ProviderError::Unsupported(_)) => (State::NotChecked, None),
        Err(e) => (State::Down, Some(e.to_string())),
    };
    PaymentCheck {
        tenant: route.tenant.clone(),
        originator: route.originator.clone(),
        status,
        latency_ms: (status != State::NotChecked).then_some(latency_ms),
        error,
    }
}

/// A provider is up when every authority's call answered, down when none did, degraded between;
/// not checked when there was nothing to ask.
pub(super) fn provider_state(checks: &[PaymentCheck]) -> State {
    let asked: Vec<_> = checks.iter().filter(|c| c.status != State::NotChecked).collect();
    let up = asked.iter().filter(|c| c.status == State::Up).count();
    match (asked.len(), up) {
        (0, _) => State::NotChecked,
        (all, up) if up == all => State::Up,
        (_, 0) => State::Down,
        _ => State::Degraded,
    }
}

/// The outbox's size and age (from the same statement `/metrics` reads); `not_checked` when the
/// database does not answer in time.
pub(super) async fn outbox(db: &Database, clock: &dyn Clock, limit: Duration) -> OutboxHealth {
    let now = clock.now_millis();
    let backlog = match tokio::time::timeout(limit, db.backlog(now)).await {
        Ok(Ok(backlog)) => backlog,
        _ => {
            return OutboxHealth {
                status: State::NotChecked,
                undelivered: None,
                oldest_undelivered_age_secs: None,
                given_up: None,
            }
        }
    };
    let age_secs = backlog.outbox_oldest_created_at.map(|at| now.saturating_sub(at).max(0) / 1000);
    let backlog_too_old = age_secs.is_some_and(|age| age > OUTBOX_BACKLOG_AFTER.as_secs() as i64);
    let status = if backlog_too_old || backlog.outbox_given_up > 0 { State::Degraded } else { State::Up };
    OutboxHealth {
        status,
        undelivered: Some(backlog.outbox_depth),
        oldest_undelivered_age_secs: age_secs,
        given_up: Some(backlog.outbox_given_up),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: State) -> PaymentCheck {
        PaymentCheck { tenant: "t".into(), originator: "o".into(), status, latency_ms: None, error: None }
    }

    #[test]
    fn a_provider_is_as_up_as_its_authorities() {
        assert_eq!(provider_state(&[]), State::NotChecked);
        assert_eq!(provider_state(&[check(State::NotChecked)]), State::NotChecked);
        assert_eq!(provider_state(&[check(State::Up), check(State::Up)]), State::Up);
        assert_eq!(provider_state(&[check(State::Up), check(State::Down)]), State::Degraded);
        assert_eq!(provider_state(&[check(State::Down), check(State::NotChecked)]), State::Down);
    }
}
