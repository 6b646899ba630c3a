//! Surviving a dead etcd member. The etcd client spreads requests over every endpoint it was
//! given, and keeps handing some to an endpoint whose member is down: they fail with a connect
//! error although the other members would answer (etcd-client, like tonic's balancer, has no
//! health checking). Two remedies, as etcd's Go client has them:
//!
//! - [`not_sent`] recognises the failures of requests that never reached etcd (the connection was
//!   refused), which are safe to send again, even writes; [`retried`] does so until the request
//!   timeout.
//! - [`run`] probes every endpoint (a TCP connection) each interval, takes those that refuse out
//!   of the client's rotation and puts them back when they answer again ([`changes`] decides).
//!   It never takes out the last endpoint: with every member down, the first to come back must
//!   still be reached.

use std::collections::BTreeSet;
use std::time::Duration;

use etcd_client::Client;

use super::reflector::timed;
use crate::StoreError;

/// gRPC's `UNAVAILABLE` (tonic maps a failed connection to it).
const UNAVAILABLE: i32 = 14;
/// Pause between attempts of a request that was not sent.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Whether `error` means the request was never sent to etcd: `UNAVAILABLE` caused by a connection
/// that could not be established. Only then is resending a write safe (it cannot have applied).
pub(crate) fn not_sent(error: &etcd_client::Error) -> bool {
    let etcd_client::Error::GRpcStatus(status) = error else { return false };
    if i32::from(status.code()) != UNAVAILABLE {
        return false;
    }
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return connect_failure(io.kind());
        }
        source = e.source();
    }
    false
}

/// The kinds of I/O errors only establishing a connection produces.
fn connect_failure(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(kind, ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable)
}

/// Runs `call` (a fresh request each time) until it is answered, fails in a way other than
/// [`not_sent`], or `timeout` has passed; failures map to `Backend` as [`timed`] does.
pub(crate) async fn retried<T, F, Fut>(timeout: Duration, doing: &str, mut call: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, call()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if not_sent(&e) && left > RETRY_PAUSE => {
                tracing::debug!(error = %e, doing, "etcd request not sent; trying another member");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Ok(Err(e)) => return Err(StoreError::Backend(format!("etcd {doing}: {e}"))),
            Err(_) => return Err(StoreError::Backend(format!("etcd {doing}: no answer within {timeout:?}"))),
        }
    }
}

/// What to change in the client's rotation.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

/// The changes that make the rotation `active` the `healthy` endpoints (in the order of `all`):
/// endpoints that answer come in, those that do not go out, unless none answers, in which case
/// nothing changes (the rotation is never emptied, and keeps what it had).
pub(crate) fn changes(all: &[String], active: &BTreeSet<String>, healthy: &BTreeSet<String>) -> Changes {
    if healthy.is_empty() {
        return Changes::default();
    }
    Changes {
        add: all.iter().filter(|e| healthy.contains(*e) && !active.contains(*e)).cloned().collect(),
        remove: all.iter().filter(|e| !healthy.contains(*e) && active.contains(*e)).cloned().collect(),
    }
}

/// `host:port` of an endpoint URL (`http://host:port[/]`).
pub(crate) fn address(endpoint: &str) -> Option<&str> {
    let rest = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://"))?;
    let authority = rest.split('/').next()?;
    (!authority.is_empty()).then_some(authority)
}

/// Whether the endpoint accepts a TCP connection within `timeout`.
async fn answers(endpoint: &str, timeout: Duration) -> bool {
    let Some(addr) = address(endpoint) else { return false };
    matches!(tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)))
}

/// Probes the endpoints every `interval` and keeps the client's rotation to those that answer,
/// until the task is aborted.
pub(crate) async fn run(client: Client, all: Vec<String>, interval: Duration) {
    let mut active: BTreeSet<String> = all.iter().cloned().collect();
    let probe_timeout = interval.min(Duration::from_secs(1));
    loop {
        tokio::time::sleep(interval).await;
        let mut healthy = BTreeSet::new();
        for endpoint in &all {
            if answers(endpoint, probe_timeout).await {
                healthy.insert(endpoint.clone());
            }
        }
        let Changes { add, remove } = changes(&all, &active, &healthy);
        for endpoint in remove {
            match timed(probe_timeout, "endpoint removal", client.remove_endpoint(&endpoint)).await {
                Ok(()) => {
                    tracing::warn!(endpoint, "etcd member does not answer; no longer sending it requests");
                    active.remove(&endpoint);
                }
                Err(e) => tracing::debug!(endpoint, error = %e, "cannot take an etcd endpoint out of rotation"),
            }
        }
        for endpoint in add {
            match timed(probe_timeout, "endpoint addition", client.add_endpoint(&endpoint)).await {
                Ok(()) => {
                    tracing::info!(endpoint, "etcd member answers again");
                    active.insert(endpoint);
                }
                Err(e) => tracing::debug!(endpoint, error = %e, "cannot put an etcd endpoint back in rotation"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rotation_changes() {
        let all: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        /// active, healthy, add, remove
        type Case =
            (&'static [&'static str], &'static [&'static str], &'static [&'static str], &'static [&'static str]);
        let cases: [Case; 6] = [
            (&["a", "b", "c"], &["a", "b", "c"], &[], &[]),
            (&["a", "b", "c"], &["b", "c"], &[], &["a"]),
            (&["b", "c"], &["a", "b", "c"], &["a"], &[]),
            (&["b", "c"], &["a"], &["a"], &["b", "c"]),
            // Nothing answers: keep the rotation as it is.
            (&["b"], &[], &[], &[]),
            (&["a", "b", "c"], &[], &[], &[]),
        ];
        for (active, healthy, add, remove) in cases {
            let got = changes(&all, &set(active), &set(healthy));
            let want = Changes {
                add: add.iter().map(|s| s.to_string()).collect(),
                remove: remove.iter().map(|s| s.to_string()).collect(),
            };
            assert_eq!(got, want, "active {active:?}, healthy {healthy:?}");
        }
    }

    #[test]
    fn addresses() {
        let cases = [
            ("http://127.0.0.1:2379", Some("127.0.0.1:2379")),
            ("http://etcd-0:2379/", Some("etcd-0:2379")),
            ("https://[::1]:2379", Some("[::1]:2379")),
            ("http://", None),
            ("127.0.0.1:2379", None),
        ];
        for (endpoint, want) in cases {
            assert_eq!(address(endpoint), want, "{endpoint}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_was_not_sent() {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let options = etcd_client::ConnectOptions::new().with_connect_timeout(Duration::from_secs(1));
        // Connecting succeeds lazily; the first request meets the refusal.
        let client = Client::connect([endpoint.as_str()], Some(options)).await.expect("a lazy connection");
        let kv = client.kv_client();
        let error = kv.clone().get("k", None).await.expect_err("nobody answers");
        assert!(not_sent(&error), "{error:?}");
        let mut calls = 0;
        let result = retried(Duration::from_millis(300), "get", || {
            calls += 1;
            let mut kv = kv.clone();
            async move { kv.get("k", None).await }
        })
        .await;
        assert!(matches!(result, Err(StoreError::Backend(m)) if m.starts_with("etcd get: ")));
        assert!(calls > 1, "a request that was not sent is tried again ({calls} calls)");
        assert!(!answers(&endpoint, Duration::from_millis(200)).await);
    }

    #[test]
    fn other_failures_may_have_been_applied() {
        let errors = [etcd_client::Error::WatchError("x".into()), etcd_client::Error::InvalidArgs("x".into())];
        for e in errors {
            assert!(!not_sent(&e), "{e:?}");
        }
    }
}
