//! The pure half of `syncReplicaSet` (`pkg/controller/replicaset/replica_set.go`): from a ReplicaSet,
//! the pods and ReplicaSets of its namespace as the caches show them, the expectations verdict and
//! `now`, decide what to claim, how many pods to create or which to delete, and the new status.
//!
//! The executor ([`mod@super::run`]) runs the same steps one at a time, because each depends on how the
//! previous one went (an adoption that hits NotFound claims nothing; a create that fails puts a
//! ReplicaFailure condition in the status). [`plan`] composes them assuming every action succeeds,
//! which is what a sync on a healthy API does, and is what the table tests exercise.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use skiff_api::selector::LabelSelector;

use super::claim::{self, ClaimPlan};
use super::pods;
use super::rank;
use super::status::{self, ManageError};

/// At most this many pods are created or deleted per sync (`BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// The first slow-start batch (`SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// What to do about the number of pods.
#[derive(Debug, Clone, PartialEq)]
pub enum Manage<'a> {
    /// Enough pods, or the ReplicaSet must wait (unmet expectations, being deleted).
    Nothing,
    /// Create `count` copies of `pod`, in slow-start `batches` (1, 2, 4, … summing to `count`); stop
    /// at the first batch with a failure.
    Create { pod: Box<Pod>, count: usize, batches: Vec<usize> },
    /// Creating is impossible without asking the API (the template has no labels): a manage error.
    CannotCreate(ManageError),
    /// Delete these pods, least valuable first.
    Delete { pods: Vec<&'a Pod> },
}

/// Everything a sync decides, assuming each action succeeds.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    pub claims: ClaimPlan<'a>,
    pub manage: Manage<'a>,
    /// The status to write, or `None` when the stored one is already right.
    pub status: Option<ReplicaSetStatus>,
}

/// The observed state a sync works from.
#[derive(Debug, Clone, Copy)]
pub struct SyncInput<'a> {
    pub rs: &'a ReplicaSet,
    /// Every pod of the ReplicaSet's namespace in the cache, active or not.
    pub pods: &'a [&'a Pod],
    /// Every ReplicaSet of the namespace in the cache (for the co-location rank of sibling pods).
    pub replica_sets: &'a [&'a ReplicaSet],
    /// The expectations allow acting (`SatisfiedExpectations`).
    pub expectations_satisfied: bool,
    pub now: Timestamp,
}

/// Why a ReplicaSet cannot be planned at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Upstream logs this and skips the ReplicaSet.
    #[error("error converting pod selector to selector for rs {key}: {message}")]
    Selector { key: String, message: String },
}

/// Slow-start batch sizes for `count` creations (`slowStartBatch`): 1, 2, 4, … the last one cut to
/// what remains.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut remaining = count;
    let mut size = SLOW_START_INITIAL_BATCH.min(remaining);
    while size > 0 {
        batches.push(size);
        remaining -= size;
        size = size.saturating_mul(2).min(remaining);
    }
    batches
}

/// `getPodsPrefix`: `<name>-`, or `<name>` alone when the dash would make an invalid name prefix
/// (longer than a DNS subdomain allows).
pub fn generate_name_prefix(rs_name: &str) -> String {
    let prefix = format!("{rs_name}-");
    // ValidatePodName(prefix, true) masks the trailing dash and checks a DNS-1123 subdomain; a
    // ReplicaSet's name already is one, so only the length can fail.
    if prefix.len() > 253 { rs_name.to_string() } else { prefix }
}

/// The pod a ReplicaSet creates (`GetPodFromTemplate`): the template's labels, annotations and
/// finalizers, `generateName: <rs>-`, the controller reference, the template's spec. Fails when the
/// template has no labels (`unable to create pods, no labels`), as upstream refuses before calling
/// the API.
pub fn pod_from_template(rs: &ReplicaSet) -> Result<Pod, ManageError> {
    let template = rs.spec.as_ref().and_then(|s| s.template.as_ref());
    let tmeta = template.and_then(|t| t.metadata.as_ref());
    let labels = tmeta.and_then(|m| m.labels.clone()).filter(|l| !l.is_empty());
    if labels.is_none() {
        return Err(ManageError { message: "unable to create pods, no labels".to_string() });
    }
    let owner = OwnerReference {
        api_version: "apps/v1".to_string(),
        kind: "ReplicaSet".to_string(),
        name: rs.metadata.name.clone().unwrap_or_default(),
        uid: rs.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name_prefix(rs.metadata.name.as_deref().unwrap_or(""))),
            labels,
            annotations: tmeta.and_then(|m| m.annotations.clone()).filter(|a| !a.is_empty()),
            finalizers: tmeta.and_then(|m| m.finalizers.clone()).filter(|f| !f.is_empty()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.and_then(|t| t.spec.clone()),
        status: None,
    })
}

/// Pods of every ReplicaSet controlled by the same owner as `rs` (itself included), de-duplicated by
/// UID (`getIndirectlyRelatedPods`). Empty when `rs` has no controller: a lone ReplicaSet ranks all
/// its pods 0.
pub fn related_pods<'a>(rs: &ReplicaSet, replica_sets: &[&ReplicaSet], all_pods: &[&'a Pod]) -> Vec<&'a Pod> {
    let Some(owner) = pods::controller_of(&rs.metadata) else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for sibling in replica_sets.iter().filter(|r| pods::is_controlled_by(&r.metadata, &owner.uid)) {
        if sibling.metadata.namespace != rs.metadata.namespace {
            continue;
        }
        let Ok(selector) = pods::selector_of(sibling) else { continue };
        for &pod in all_pods {
            if pod.metadata.namespace == sibling.metadata.namespace
                && pods::selector_matches(&selector, &pod.metadata)
                && seen.insert(pod.metadata.uid.clone().unwrap_or_default())
            {
                out.push(pod);
            }
        }
    }
    out
}

/// `manageReplicas`' decision: with `active` the claimed active pods, create the missing ones (at most
/// [`BURST_REPLICAS`]) or delete the surplus (at most [`BURST_REPLICAS`], least valuable first). Does
/// nothing while expectations are unmet or the ReplicaSet is being deleted.
pub fn plan_replicas<'a>(
    rs: &ReplicaSet,
    active: &[&'a Pod],
    related: &[&Pod],
    expectations_satisfied: bool,
    now: Timestamp,
) -> Manage<'a> {
    if !expectations_satisfied || rs.metadata.deletion_timestamp.is_some() {
        return Manage::Nothing;
    }
    let desired = usize::try_from(pods::desired_replicas(rs).max(0)).unwrap_or(0);
    let have = active.len();
    if have < desired {
        let count = (desired - have).min(BURST_REPLICAS);
        match pod_from_template(rs) {
            Ok(pod) => Manage::Create { pod: Box::new(pod), count, batches: slow_start_batches(count) },
            Err(e) => Manage::CannotCreate(e),
        }
    } else if have > desired {
        let count = (have - desired).min(BURST_REPLICAS);
        Manage::Delete { pods: rank::pods_to_delete(active, related, count, now) }
    } else {
        Manage::Nothing
    }
}

/// The whole sync, assuming every adoption, release, create and delete succeeds.
pub fn plan<'a>(input: &SyncInput<'a>) -> Result<Plan<'a>, PlanError> {
    let rs = input.rs;
    let selector: LabelSelector =
        pods::selector_of(rs).map_err(|message| PlanError::Selector { key: pods::key(&rs.metadata), message })?;
    let active: Vec<&Pod> = input.pods.iter().copied().filter(|p| pods::is_active(p)).collect();
    let claims = claim::plan_claims(rs, &selector, &active);
    let claimed: Vec<&Pod> = claims.owned.iter().chain(claims.adopt.iter()).copied().collect();
    let terminating = claim::claimed_terminating(rs, &selector, input.pods);
    let related = related_pods(rs, input.replica_sets, input.pods);
    let manage = plan_replicas(rs, &claimed, &related, input.expectations_satisfied, input.now);
    let manage_error = match &manage {
        Manage::CannotCreate(e) => Some(e),
        _ => None,
    };
    let new_status = status::calculate_status(rs, &claimed, &terminating, manage_error, input.now);
    let status = (!status::status_unchanged(rs, &new_status)).then(|| status::status_for_write(rs, new_status));
    Ok(Plan { claims, manage, status })
}

#[cfg(test)]
mod tests {
    use super::super::pods::testing::*;
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn names(pods: &[&Pod]) -> Vec<String> {
        pods.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect()
    }

    fn run_plan(
        rs: &ReplicaSet,
        pods: &[Pod],
        satisfied: bool,
        now: Timestamp,
    ) -> (Vec<String>, Vec<String>, String, Option<ReplicaSetStatus>) {
        let refs: Vec<&Pod> = pods.iter().collect();
        let rss = [rs];
        let input = SyncInput { rs, pods: &refs, replica_sets: &rss, expectations_satisfied: satisfied, now };
        let p = plan(&input).expect("plan");
        let manage = match &p.manage {
            Manage::Nothing => "nothing".to_string(),
            Manage::Create { count, batches, .. } => format!("create {count} {batches:?}"),
            Manage::CannotCreate(e) => format!("cannot create: {}", e.message),
            Manage::Delete { pods } => format!("delete {}", names(pods).join(",")),
        };
        (names(&p.claims.adopt), names(&p.claims.release), manage, p.status)
    }

    #[test]
    fn slow_start_batches_table() {
        let cases: [(usize, &[usize]); 7] = [
            (0, &[]),
            (1, &[1]),
            (2, &[1, 1]),
            (3, &[1, 2]),
            (7, &[1, 2, 4]),
            (10, &[1, 2, 4, 3]),
            (500, &[1, 2, 4, 8, 16, 32, 64, 128, 245]),
        ];
        for (count, want) in cases {
            assert_eq!(slow_start_batches(count), want, "count={count}");
            assert_eq!(slow_start_batches(count).iter().sum::<usize>(), count);
        }
    }

    #[test]
    fn scale_up_from_zero() {
        let (adopt, release, manage, status) = run_plan(&rs(3), &[], true, t(0));
        assert!(adopt.is_empty() && release.is_empty());
        assert_eq!(manage, "create 3 [1, 2]");
        // Status still reports what exists now, and observes generation 1.
        let s = status.expect("first status write");
        assert_eq!(s.replicas, 0);
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(s.terminating_replicas, Some(0));
    }

    #[test]
    fn burst_caps_creates_and_deletes() {
        let (_, _, manage, _) = run_plan(&rs(1200), &[], true, t(0));
        assert_eq!(manage, "create 500 [1, 2, 4, 8, 16, 32, 64, 128, 245]");
        let pods: Vec<Pod> = (0..600).map(|i| pod(&format!("p{i}"))).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        match plan_replicas(&rs(0), &refs, &[], true, t(0)) {
            Manage::Delete { pods } => assert_eq!(pods.len(), 500),
            other => panic!("want delete, got {other:?}"),
        }
    }

    #[test]
    fn created_pod_shape() {
        let mut rs = rs(1);
        if let Some(m) = rs.spec.as_mut().and_then(|s| s.template.as_mut()).and_then(|t| t.metadata.as_mut()) {
            m.annotations = Some(labels(&[("note", "x")]));
            m.finalizers = Some(vec!["example.com/f".into()]);
        }
        let pod = pod_from_template(&rs).expect("pod");
        let wire = serde_json::to_value(&pod).expect("json");
        assert_eq!(
            wire,
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": "web-",
                    "labels": {"app": "web"},
                    "annotations": {"note": "x"},
                    "finalizers": ["example.com/f"],
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid",
                        "controller": true, "blockOwnerDeletion": true
                    }]
                },
                "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}
            })
        );
    }

    #[test]
    fn template_without_labels_cannot_create() {
        let mut rs = rs(2);
        if let Some(m) = rs.spec.as_mut().and_then(|s| s.template.as_mut()).and_then(|t| t.metadata.as_mut()) {
            m.labels = None;
        }
        let (_, _, manage, status) = run_plan(&rs, &[], true, t(0));
        assert_eq!(manage, "cannot create: unable to create pods, no labels");
        let cond = &status.expect("status").conditions.expect("conditions")[0];
        assert_eq!(cond.reason.as_deref(), Some("FailedCreate"));
        assert_eq!(cond.message.as_deref(), Some("unable to create pods, no labels"));
    }

    #[test]
    fn long_names_drop_the_dash() {
        assert_eq!(generate_name_prefix("web"), "web-");
        let long = "a".repeat(253);
        assert_eq!(generate_name_prefix(&long), long);
        assert_eq!(generate_name_prefix(&"a".repeat(252)), format!("{}-", "a".repeat(252)));
    }

    #[test]
    fn expectations_block_double_creates() {
        // The cache shows 1 of 3 pods because 2 creates are still in flight: nothing is created.
        let (_, _, manage, _) = run_plan(&rs(3), &[pod("a")], false, t(0));
        assert_eq!(manage, "nothing");
        // Once satisfied, the plan creates what is really missing.
        let (_, _, manage, _) = run_plan(&rs(3), &[pod("a")], true, t(0));
        assert_eq!(manage, "create 2 [1, 1]");
    }

    #[test]
    fn deleted_replicaset_only_updates_status() {
        let mut rs = rs(3);
        rs.metadata.deletion_timestamp = Some(Time(t(0)));
        let (adopt, _, manage, status) = run_plan(&rs, &[pod("a"), pod("o").orphan()], true, t(0));
        assert!(adopt.is_empty());
        assert_eq!(manage, "nothing");
        assert_eq!(status.expect("status").replicas, 1);
    }

    #[test]
    fn inactive_pods_are_replaced() {
        let pods = [
            pod("a").ready_since(t(0)),
            pod("failed").phase("Failed"),
            pod("done").phase("Succeeded"),
            pod("going").ready_since(t(0)).deleting(),
        ];
        let (_, _, manage, status) = run_plan(&rs(3), &pods, true, t(10));
        assert_eq!(manage, "create 2 [1, 1]");
        let s = status.expect("status");
        assert_eq!((s.replicas, s.ready_replicas, s.terminating_replicas), (1, Some(1), Some(1)));
    }

    #[test]
    fn scale_down_deletes_the_least_valuable() {
        let pods = [
            pod("ready-old").on("n1").ready_since(t(0)),
            pod("not-ready").on("n1").phase("Running").not_ready(),
            pod("ready-new").on("n2").ready_since(t(99_000)),
            pod("pending").on("n3"),
        ];
        let (_, _, manage, _) = run_plan(&rs(1), &pods, true, t(100_000));
        assert_eq!(manage, "delete pending,not-ready,ready-new");
        let (_, _, manage, _) = run_plan(&rs(3), &pods, true, t(100_000));
        assert_eq!(manage, "delete pending");
        let (_, _, manage, _) = run_plan(&rs(0), &pods, true, t(100_000));
        assert_eq!(manage, "delete ready-old,not-ready,ready-new,pending");
    }

    #[test]
    fn adoption_and_release_feed_the_count() {
        let pods = [
            pod("mine"),
            pod("orphan").orphan(),
            pod("relabelled").with_labels(&[("app", "db")]),
            pod("other-owner").owned_by("x"),
        ];
        let (adopt, release, manage, status) = run_plan(&rs(3), &pods, true, t(0));
        assert_eq!(adopt, vec!["orphan"]);
        assert_eq!(release, vec!["relabelled"]);
        // mine + orphan = 2 of 3.
        assert_eq!(manage, "create 1 [1]");
        assert_eq!(status.expect("status").replicas, 2);
    }

    #[test]
    fn steady_state_writes_nothing() {
        let mut rs = rs(2);
        let pods = [pod("a").ready_since(t(0)), pod("b").ready_since(t(0))];
        rs.status = Some(ReplicaSetStatus {
            replicas: 2,
            fully_labeled_replicas: Some(2),
            ready_replicas: Some(2),
            available_replicas: Some(2),
            terminating_replicas: Some(0),
            observed_generation: Some(1),
            conditions: None,
        });
        let (_, _, manage, status) = run_plan(&rs, &pods, true, t(10));
        assert_eq!(manage, "nothing");
        assert_eq!(status, None);
    }

    #[test]
    fn related_pods_come_from_sibling_replicasets() {
        let owner = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            uid: "dep-uid".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let mut a = rs(1);
        a.metadata.owner_references = Some(vec![owner.clone()]);
        let mut b = rs(1);
        b.metadata.name = Some("web-2".into());
        b.metadata.uid = Some("rs2-uid".into());
        b.metadata.owner_references = Some(vec![owner]);
        if let Some(s) = b.spec.as_mut() {
            s.selector.match_labels = Some(labels(&[("app", "web2")]));
        }
        let lone = rs(1);
        let pods = [
            pod("p1"),
            pod("p2").with_labels(&[("app", "web2")]).owned_by("rs2-uid"),
            pod("p3").with_labels(&[("app", "x")]),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(names(&related_pods(&a, &[&a, &b], &refs)), vec!["p1", "p2"]);
        assert!(related_pods(&lone, &[&lone], &refs).is_empty());
    }
}
