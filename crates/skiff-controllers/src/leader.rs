//! Leader election on a `coordination.k8s.io/v1` Lease (client-go `tools/leaderelection`), so that
//! several servers can run and only one set of controllers acts.
//!
//! [`decide`] is the whole policy, as a function of the observed Lease and the clock; [`Elector`]
//! reads and writes the Lease through the API.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

/// Timings, as kube-controller-manager's defaults: lease 15 s, renew deadline 10 s, retry 2 s.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Timings client-go's elector refuses (`leaderelection.NewLeaderElector`), with its messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingsError {
    #[error("leaseDuration must be greater than zero")]
    LeaseDurationZero,
    #[error("leaseDuration must be greater than renewDeadline")]
    LeaseNotAboveRenew,
    #[error("renewDeadline must be greater than retryPeriod*JitterFactor")]
    RenewNotAboveRetry,
    #[error("retryPeriod must be greater than zero")]
    RetryPeriodZero,
}

/// client-go's `JitterFactor`: the retry period can stretch by up to 20%.
const JITTER_FACTOR: f64 = 1.2;

impl Timings {
    /// Checks the timings as client-go does before electing; a lease is written in whole seconds,
    /// so it must be at least 1 s.
    pub fn validate(&self) -> Result<(), TimingsError> {
        if self.lease_duration.as_secs() == 0 {
            return Err(TimingsError::LeaseDurationZero);
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(TimingsError::LeaseNotAboveRenew);
        }
        if self.retry_period.is_zero() {
            return Err(TimingsError::RetryPeriodZero);
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return Err(TimingsError::RenewNotAboveRetry);
        }
        Ok(())
    }
}

/// What to do with the Lease now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it, held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// Someone else held it, but it expired: take it over (a new transition).
    TakeOver,
    /// Someone else holds a live Lease.
    Wait,
}

/// The decision for `me` given the observed Lease at `now`.
pub fn decide(lease: Option<&Lease>, me: &str, now: Timestamp) -> Decision {
    let Some(lease) = lease else { return Decision::Create };
    let spec = lease.spec.as_ref();
    let holder = spec.and_then(|s| s.holder_identity.as_deref()).unwrap_or("");
    if holder == me {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let duration = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(15);
    let renewed = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
    match renewed {
        Some(t) if t + SignedDuration::from_secs(i64::from(duration)) > now => Decision::Wait,
        _ => Decision::TakeOver,
    }
}

/// Competes for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: Timings,
}

impl Elector {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, timings: Timings) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timings,
        }
    }

    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// One attempt to acquire or renew; `Ok(true)` when we hold the Lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> kube::Result<bool> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let decision = decide(current.as_ref(), &self.identity, now);
        let lease_seconds = i32::try_from(self.timings.lease_duration.as_secs()).unwrap_or(15);
        let result = match (decision, current) {
            (Decision::Wait, _) => return Ok(false),
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(lease_seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            (decision, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if decision == Decision::TakeOver {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(lease_seconds);
                spec.renew_time = Some(MicroTime(now));
                // The resourceVersion in `lease` makes this a compare-and-swap: a competitor's write in
                // between turns it into a 409 and we lose this round.
                let name = lease.name_any();
                self.api.replace(&name, &PostParams::default(), &lease).await.map(|_| ())
            }
            (_, None) => return Ok(false),
        };
        match result {
            Ok(()) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this process holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.timings.retry_period).await;
        }
    }

    /// Keeps renewing; returns when a renewal has not succeeded within the renew deadline (leadership
    /// is lost and the caller must stop acting).
    pub async fn hold(&self) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.timings.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => tracing::debug!(error = %e, "lease renewal failed"),
            }
            if last_renewal.elapsed() > self.timings.renew_deadline {
                return;
            }
        }
    }
}

/// Runs `work` only while this process holds the Lease `kube-system/<lease>`: waits to acquire it,
/// starts `work` with a cancellation token, and cancels it (then competes again) when leadership is
/// lost. Returns when `stop` is cancelled.
pub async fn run_elected<F, Fut>(
    client: Client,
    lease: &str,
    identity: &str,
    timings: Timings,
    stop: tokio_util::sync::CancellationToken,
    work: F,
) where
    F: Fn(tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let elector = Elector::new(client, "kube-system", lease, identity, timings);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = elector.acquire() => {}
        }
        tracing::info!(lease, identity, "acquired leadership");
        let token = stop.child_token();
        let task = tokio::spawn(work(token.clone()));
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = elector.hold() => tracing::warn!(lease, identity, "lost leadership"),
        }
        token.cancel();
        let _ = task.await;
        if stop.is_cancelled() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_secs_ago: i64, duration: i32, now: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_string()),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_secs_ago))),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        let now = Timestamp::from_second(1_000_000).expect("timestamp");
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(decide(Some(&lease("a", 100, 15, now)), "a", now), Decision::Renew);
        assert_eq!(decide(Some(&lease("b", 5, 15, now)), "a", now), Decision::Wait);
        assert_eq!(decide(Some(&lease("b", 16, 15, now)), "a", now), Decision::TakeOver);
        assert_eq!(decide(Some(&lease("", 0, 15, now)), "a", now), Decision::TakeOver);
        let mut no_renew = lease("b", 0, 15, now);
        if let Some(s) = no_renew.spec.as_mut() {
            s.renew_time = None;
        }
        assert_eq!(decide(Some(&no_renew), "a", now), Decision::TakeOver);
    }

    #[test]
    fn timings_are_validated_as_client_go_does() {
        let t = |lease: u64, renew: u64, retry: u64| Timings {
            lease_duration: Duration::from_millis(lease),
            renew_deadline: Duration::from_millis(renew),
            retry_period: Duration::from_millis(retry),
        };
        assert_eq!(Timings::default().validate(), Ok(()));
        assert_eq!(t(3000, 2000, 500).validate(), Ok(()));
        assert_eq!(t(500, 200, 100).validate(), Err(TimingsError::LeaseDurationZero));
        assert_eq!(t(10_000, 10_000, 2000).validate(), Err(TimingsError::LeaseNotAboveRenew));
        assert_eq!(t(15_000, 10_000, 0).validate(), Err(TimingsError::RetryPeriodZero));
        // 2.4 s is 1.2 x 2 s: not strictly greater.
        assert_eq!(t(15_000, 2400, 2000).validate(), Err(TimingsError::RenewNotAboveRetry));
        assert_eq!(t(15_000, 2401, 2000).validate(), Ok(()));
        assert_eq!(
            TimingsError::RenewNotAboveRetry.to_string(),
            "renewDeadline must be greater than retryPeriod*JitterFactor"
        );
    }
}
