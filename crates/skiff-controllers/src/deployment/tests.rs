//! Plan-level tests: the whole sync against an in-memory world where the test plays the API server
//! (applying the plan's writes), the ReplicaSet controller and the kubelet.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::plan::{Action, Observed, Plan, plan};
use super::progress::{self, reason};
use super::util;

const T0: i64 = 1_700_000_000;

fn deployment(replicas: i32, strategy: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-web", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": strategy,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}
        }
    }))
    .expect("deployment")
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

/// Pods of one ReplicaSet as the test's kubelet sees them.
#[derive(Default, Clone, Copy)]
struct Pods {
    available: i32,
    unavailable: i32,
}

/// The test's cluster: the API server's objects, the ReplicaSet controller's pods, Events.
struct World {
    d: Deployment,
    rss: Vec<ReplicaSet>,
    pods: BTreeMap<String, Pods>,
    /// ReplicaSets whose pods never become ready.
    broken: BTreeSet<String>,
    now: i64,
    uid: u32,
    events: Vec<String>,
    foreign: BTreeSet<String>,
}

impl World {
    fn new(d: Deployment) -> World {
        World {
            d,
            rss: vec![],
            pods: BTreeMap::new(),
            broken: BTreeSet::new(),
            now: T0,
            uid: 0,
            events: vec![],
            foreign: BTreeSet::new(),
        }
    }

    fn observed(&self) -> Observed {
        let mut taken: BTreeSet<String> = self.rss.iter().filter_map(|r| r.metadata.name.clone()).collect();
        taken.extend(self.foreign.iter().cloned());
        Observed {
            deployment: self.d.clone(),
            replica_sets: self.rss.clone(),
            pods: vec![],
            taken_names: taken,
            now: Timestamp::from_second(self.now).expect("now"),
        }
    }

    /// One sync of the Deployment controller, its writes applied.
    fn sync(&mut self) -> Plan {
        let p = plan(&self.observed());
        for a in &p.actions {
            match a {
                Action::CreateReplicaSet(rs) => {
                    let mut rs = (**rs).clone();
                    self.uid += 1;
                    rs.metadata.uid = Some(format!("rs-uid-{}", self.uid));
                    // Creation order is what matters; a later uid is a later creation.
                    rs.metadata.creation_timestamp =
                        Some(Time(Timestamp::from_second(T0 + i64::from(self.uid)).expect("t")));
                    rs.metadata.generation = Some(1);
                    assert!(
                        !self.rss.iter().any(|r| r.metadata.name == rs.metadata.name),
                        "create of an existing name"
                    );
                    self.rss.push(rs);
                }
                Action::UpdateReplicaSet(rs) => {
                    let i =
                        self.rss.iter().position(|r| r.metadata.name == rs.metadata.name).expect("updated rs exists");
                    let mut rs = (**rs).clone();
                    if rs.spec != self.rss[i].spec {
                        rs.metadata.generation = Some(self.rss[i].metadata.generation.unwrap_or(1) + 1);
                    }
                    rs.status = self.rss[i].status.clone();
                    self.rss[i] = rs;
                }
                Action::DeleteReplicaSet { name } => self.rss.retain(|r| r.metadata.name.as_deref() != Some(name)),
                Action::UpdateStatus(d) => {
                    let spec = self.d.spec.clone();
                    self.d = (**d).clone();
                    self.d.spec = spec;
                }
                Action::Event { reason, message, .. } => self.events.push(format!("{reason}: {message}")),
            }
        }
        p
    }

    /// The ReplicaSet controller: create or delete pods (unavailable ones first) and report status.
    fn rs_controller(&mut self) {
        for rs in &mut self.rss {
            let name = rs.metadata.name.clone().unwrap_or_default();
            let want = util::rs_replicas(rs);
            let pods = self.pods.entry(name).or_default();
            let have = pods.available + pods.unavailable;
            if have < want {
                pods.unavailable += want - have;
            } else if have > want {
                let mut extra = have - want;
                let drop_unavailable = extra.min(pods.unavailable);
                pods.unavailable -= drop_unavailable;
                extra -= drop_unavailable;
                pods.available -= extra;
            }
            rs.status = Some(ReplicaSetStatus {
                replicas: pods.available + pods.unavailable,
                available_replicas: Some(pods.available),
                ready_replicas: Some(pods.available),
                observed_generation: rs.metadata.generation,
                terminating_replicas: Some(0),
                ..Default::default()
            });
        }
    }

    /// The kubelet: every pod of a healthy ReplicaSet becomes ready (and available).
    fn kubelet(&mut self) {
        for (name, pods) in &mut self.pods {
            if !self.broken.contains(name) {
                pods.available += pods.unavailable;
                pods.unavailable = 0;
            }
        }
        self.rs_controller();
    }

    fn rs(&self, name: &str) -> &ReplicaSet {
        self.rss.iter().find(|r| r.metadata.name.as_deref() == Some(name)).expect("rs")
    }

    fn new_rs_name(&self) -> String {
        util::find_new_replica_set(&self.d, &self.rss).and_then(|r| r.metadata.name.clone()).expect("new rs")
    }

    fn set_image(&mut self, image: &str) {
        let spec = self.d.spec.as_mut().expect("spec");
        spec.template.spec.as_mut().expect("pod spec").containers[0].image = Some(image.to_string());
        self.bump_generation();
    }

    fn set_replicas(&mut self, n: i32) {
        self.d.spec.as_mut().expect("spec").replicas = Some(n);
        self.bump_generation();
    }

    fn bump_generation(&mut self) {
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap_or(1) + 1);
    }

    fn available(&self) -> i32 {
        self.pods.values().map(|p| p.available).sum()
    }

    fn total_pods(&self) -> i32 {
        self.pods.values().map(|p| p.available + p.unavailable).sum()
    }

    fn complete(&self) -> bool {
        progress::deployment_complete(&self.d, self.d.status.as_ref())
    }

    /// Runs controller, ReplicaSet controller and kubelet until the rollout completes, checking the
    /// rolling-update invariants after every step.
    fn roll_out(&mut self, max_steps: usize) -> usize {
        let desired = util::replicas(&self.d);
        let (surge, unavailable) = (util::max_surge(&self.d), util::max_unavailable(&self.d));
        // Availability can only be held once it was reached (not during the first rollout).
        let check_available = self.available() >= desired - unavailable;
        for step in 0..max_steps {
            self.sync();
            let spec_total: i32 = self.rss.iter().map(util::rs_replicas).sum();
            assert!(spec_total <= desired + surge, "step {step}: {spec_total} replicas wanted > {desired} + {surge}");
            self.rs_controller();
            assert!(
                self.total_pods() <= desired + surge,
                "step {step}: {} pods > {desired} + {surge}",
                self.total_pods()
            );
            assert!(
                !check_available || self.available() >= desired - unavailable,
                "step {step}: {} available < {desired} - {unavailable}",
                self.available()
            );
            self.kubelet();
            self.now += 1;
            if self.complete()
                && self
                    .rss
                    .iter()
                    .all(|r| Some(r) == util::find_new_replica_set(&self.d, &self.rss) || util::rs_replicas(r) == 0)
            {
                // One more sync settles the Progressing condition.
                self.sync();
                return step;
            }
        }
        panic!("rollout did not complete in {max_steps} steps; events: {:#?}", self.events);
    }
}

fn annotation(rs: &ReplicaSet, key: &str) -> Option<String> {
    rs.metadata.annotations.as_ref().and_then(|a| a.get(key)).cloned()
}

fn condition(d: &Deployment, type_: &str) -> Option<(String, String, String)> {
    let c = progress::get_condition(d.status.as_ref()?, type_)?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}

#[test]
fn first_sync_creates_the_replica_set_at_revision_1() {
    let mut w = World::new(deployment(3, rolling(json!("25%"), json!("25%"))));
    let p = w.sync();
    let hash = super::hash::pod_template_hash(&util::deployment_template(&w.d), None);
    let name = format!("web-{hash}");
    let Action::CreateReplicaSet(rs) = &p.actions[0] else { panic!("first action: {:?}", p.actions[0]) };
    assert_eq!(rs.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(util::rs_replicas(rs), 3);
    assert_eq!(annotation(rs, util::REVISION).as_deref(), Some("1"));
    assert_eq!(annotation(rs, util::DESIRED_REPLICAS).as_deref(), Some("3"));
    assert_eq!(annotation(rs, util::MAX_REPLICAS).as_deref(), Some("4"));
    let spec = rs.spec.as_ref().expect("spec");
    assert_eq!(spec.selector.match_labels.as_ref().and_then(|m| m.get("pod-template-hash")), Some(&hash));
    let template_labels = spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone());
    assert_eq!(
        template_labels,
        Some(BTreeMap::from([("app".into(), "web".into()), ("pod-template-hash".into(), hash.clone())]))
    );
    assert_eq!(rs.metadata.labels, template_labels);
    let owner = super::adoption::controller_of(&rs.metadata).expect("controller ref");
    assert_eq!((owner.uid.as_str(), owner.block_owner_deletion), ("uid-web", Some(true)));
    assert_eq!(w.events, [format!("ScalingReplicaSet: Scaled up replica set {name} from 0 to 3")]);
    assert_eq!(w.d.metadata.annotations.as_ref().and_then(|a| a.get(util::REVISION)).map(String::as_str), Some("1"));
    assert_eq!(
        condition(&w.d, progress::PROGRESSING),
        Some(("True".into(), reason::NEW_RS_CREATED.into(), format!("Created new replica set {name:?}")))
    );
    assert_eq!(
        condition(&w.d, progress::AVAILABLE),
        Some((
            "False".into(),
            reason::MINIMUM_REPLICAS_UNAVAILABLE.into(),
            "Deployment does not have minimum availability.".into()
        ))
    );
    let status = w.d.status.clone().expect("status");
    assert_eq!((status.replicas, status.updated_replicas, status.unavailable_replicas), (Some(0), Some(0), Some(3)));

    // Pods come up: complete, NewReplicaSetAvailable, and the next sync writes nothing.
    w.rs_controller();
    w.kubelet();
    w.sync();
    assert_eq!(
        condition(&w.d, progress::PROGRESSING),
        Some((
            "True".into(),
            reason::NEW_RS_AVAILABLE.into(),
            format!("ReplicaSet {name:?} has successfully progressed.")
        ))
    );
    assert_eq!(condition(&w.d, progress::AVAILABLE).map(|c| c.1), Some(reason::MINIMUM_REPLICAS_AVAILABLE.into()));
    assert_eq!(progress::rollout_status(&w.d), Ok(("deployment \"web\" successfully rolled out\n".to_string(), true)));
    let idle = w.sync();
    assert_eq!(idle, Plan::default());
}

#[test]
fn rolling_update_events_follow_upstream_steps() {
    let mut w = World::new(deployment(3, rolling(json!("25%"), json!("25%"))));
    w.roll_out(10);
    let old = w.new_rs_name();
    w.events.clear();
    w.set_image("nginx:2");
    w.roll_out(30);
    let new = w.new_rs_name();
    assert_ne!(old, new);
    assert_eq!(
        w.events,
        [
            format!("ScalingReplicaSet: Scaled up replica set {new} from 0 to 1"),
            format!("ScalingReplicaSet: Scaled down replica set {old} from 3 to 2"),
            format!("ScalingReplicaSet: Scaled up replica set {new} from 1 to 2"),
            format!("ScalingReplicaSet: Scaled down replica set {old} from 2 to 1"),
            format!("ScalingReplicaSet: Scaled up replica set {new} from 2 to 3"),
            format!("ScalingReplicaSet: Scaled down replica set {old} from 1 to 0"),
        ]
    );
    assert_eq!(annotation(w.rs(&new), util::REVISION).as_deref(), Some("2"));
    assert_eq!(annotation(w.rs(&old), util::REVISION).as_deref(), Some("1"));
    assert_eq!(w.d.metadata.annotations.as_ref().and_then(|a| a.get(util::REVISION)).map(String::as_str), Some("2"));
    assert_eq!(util::rs_replicas(w.rs(&old)), 0);
}

#[test]
fn rolling_update_invariants_hold_over_many_configurations() {
    let cases = [
        (3, json!("25%"), json!("25%")),
        (10, json!("25%"), json!("25%")),
        (10, json!(0), json!(1)),
        (10, json!(3), json!(0)),
        (5, json!("100%"), json!("100%")),
        (1, json!("25%"), json!("25%")),
        (7, json!("0%"), json!("30%")),
    ];
    for (replicas, surge, unavailable) in cases {
        let mut w = World::new(deployment(replicas, rolling(surge.clone(), unavailable.clone())));
        w.roll_out(50);
        for image in ["nginx:2", "nginx:3"] {
            w.set_image(image);
            w.roll_out(100);
            let new = w.new_rs_name();
            assert_eq!(util::rs_replicas(w.rs(&new)), replicas, "{replicas} {surge} {unavailable}");
        }
        assert_eq!(annotation(w.rs(&w.new_rs_name()), util::REVISION).as_deref(), Some("3"));
    }
}

#[test]
fn proportional_scaling_mid_rollout() {
    let mut w = World::new(deployment(10, rolling(json!("25%"), json!("25%"))));
    w.roll_out(20);
    let old = w.new_rs_name();
    // New pods never get ready, so the rollout stalls with the new ReplicaSet at 3 (10 + 3 surge,
    // old may not shrink past 8 available).
    w.set_image("nginx:2");
    w.sync();
    let new = w.new_rs_name();
    w.broken.insert(new.clone());
    for _ in 0..5 {
        w.rs_controller();
        w.kubelet();
        w.sync();
    }
    assert_eq!((util::rs_replicas(w.rs(&old)), util::rs_replicas(w.rs(&new))), (8, 5));
    assert_eq!(annotation(w.rs(&old), util::MAX_REPLICAS).as_deref(), Some("13"));
    w.events.clear();

    // Scale 10 → 20: max 13 → 25, 12 more shared out in proportion to 8 and 5 (of 13).
    w.set_replicas(20);
    let p = w.sync();
    assert!(p.actions.iter().all(|a| !matches!(a, Action::CreateReplicaSet(_))));
    // old: round(8 * 25 / 13) = round(15.38) = 15 (+7); new: round(5 * 25 / 13) = round(9.6) = 10 (+5).
    assert_eq!((util::rs_replicas(w.rs(&old)), util::rs_replicas(w.rs(&new))), (15, 10));
    assert_eq!(
        w.events,
        [
            format!("ScalingReplicaSet: Scaled up replica set {old} from 8 to 15"),
            format!("ScalingReplicaSet: Scaled up replica set {new} from 5 to 10"),
        ]
    );
    for name in [&old, &new] {
        assert_eq!(annotation(w.rs(name), util::DESIRED_REPLICAS).as_deref(), Some("20"));
        assert_eq!(annotation(w.rs(name), util::MAX_REPLICAS).as_deref(), Some("25"));
    }

    // Scale down 20 → 5 (max 25 → 7): old 15*7/25 = 4.2 → 4 (-11), new 10*7/25 = 2.8 → 3 (-7),
    // then the leftover (-18 wanted, -18 given) is nothing.
    w.events.clear();
    w.set_replicas(5);
    w.sync();
    assert_eq!((util::rs_replicas(w.rs(&old)), util::rs_replicas(w.rs(&new))), (4, 3));
    assert_eq!(
        w.events,
        [
            format!("ScalingReplicaSet: Scaled down replica set {old} from 15 to 4"),
            format!("ScalingReplicaSet: Scaled down replica set {new} from 10 to 3"),
        ]
    );

    // The pods get fixed: the rollout finishes at 5.
    w.broken.clear();
    w.roll_out(50);
    assert_eq!(util::rs_replicas(w.rs(&w.new_rs_name())), 5);
}

#[test]
fn proportional_leftover_goes_to_the_biggest() {
    // Three active ReplicaSets of 1 each at max 3 (replicas 3, surge 0), scaled to 4: each gets
    // round(1 * 4 / 3) - 1 = 0, so the whole +1 is leftover for the first (newest of equal size).
    let mut w = World::new(deployment(3, rolling(json!(0), json!(1))));
    for (i, image) in ["a", "b", "c"].iter().enumerate() {
        let mut d = w.d.clone();
        d.spec.as_mut().expect("spec").template.spec.as_mut().expect("pod").containers[0].image =
            Some(image.to_string());
        let name = format!("web-{i}");
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u{i}"),
                          "creationTimestamp": format!("2024-01-01T00:00:0{i}Z"),
                          "annotations": {util::REVISION: (i + 1).to_string(), util::DESIRED_REPLICAS: "3", util::MAX_REPLICAS: "3"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": d.spec.as_ref().expect("spec").template},
            "status": {"replicas": 1, "availableReplicas": 1, "readyReplicas": 1}
        }))
        .expect("rs");
        w.rss.push(rs);
    }
    w.d.spec.as_mut().expect("spec").template.spec.as_mut().expect("pod").containers[0].image = Some("c".into());
    w.set_replicas(4);
    w.sync();
    let sizes: Vec<i32> = w.rss.iter().map(util::rs_replicas).collect();
    assert_eq!(sizes, [1, 1, 2]);
}

#[test]
fn hash_collision_bumps_collision_count_then_uses_another_name() {
    let mut w = World::new(deployment(2, rolling(json!("25%"), json!("25%"))));
    let first = format!("web-{}", super::hash::pod_template_hash(&util::deployment_template(&w.d), None));
    w.foreign.insert(first.clone());
    let p = w.sync();
    assert!(p.retry.is_some());
    assert!(p.actions.iter().all(|a| !matches!(a, Action::CreateReplicaSet(_))));
    assert_eq!(w.d.status.as_ref().and_then(|s| s.collision_count), Some(1));
    w.sync();
    let second = format!("web-{}", super::hash::pod_template_hash(&util::deployment_template(&w.d), Some(1)));
    assert_ne!(first, second);
    assert_eq!(w.rss.iter().filter_map(|r| r.metadata.name.clone()).collect::<Vec<_>>(), [second]);
}

#[test]
fn progress_deadline_exceeded_when_pods_never_get_ready() {
    let mut d = deployment(2, rolling(json!("25%"), json!("25%")));
    d.spec.as_mut().expect("spec").progress_deadline_seconds = Some(10);
    let mut w = World::new(d);
    w.sync();
    let name = w.new_rs_name();
    w.broken.insert(name.clone());
    w.rs_controller();
    w.now += 2;
    // The pods were created: progress (ReplicaSetUpdated, lastUpdateTime T0+2).
    w.sync();
    assert_eq!(condition(&w.d, progress::PROGRESSING).map(|c| c.1), Some(reason::REPLICA_SET_UPDATED.into()));
    w.now += 2;
    let p = w.sync();
    // Nothing moved since: requeue one second after the deadline (T0+2+10, now T0+4).
    assert_eq!(p.actions, vec![]);
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(9)));
    w.now = T0 + 12;
    let p = w.sync();
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_millis(500)), "at the deadline, not past it");
    w.now = T0 + 13;
    w.sync();
    assert_eq!(
        condition(&w.d, progress::PROGRESSING),
        Some(("False".into(), reason::TIMED_OUT.into(), format!("ReplicaSet {name:?} has timed out progressing.")))
    );
    assert_eq!(progress::rollout_status(&w.d), Err("deployment \"web\" exceeded its progress deadline".into()));
    // Already timed out: no further requeue.
    let p = w.sync();
    assert_eq!(p.requeue_after, None);
}

#[test]
fn paused_deployments_do_not_roll_out_and_resume_continues() {
    let mut w = World::new(deployment(3, rolling(json!("25%"), json!("25%"))));
    w.roll_out(10);
    let old = w.new_rs_name();
    w.d.spec.as_mut().expect("spec").paused = Some(true);
    w.set_image("nginx:2");
    w.sync();
    assert_eq!(w.rss.len(), 1, "no new ReplicaSet while paused");
    assert_eq!(
        condition(&w.d, progress::PROGRESSING),
        Some(("Unknown".into(), reason::PAUSED.into(), "Deployment is paused".into()))
    );
    // Scaling still works while paused.
    w.set_replicas(5);
    w.sync();
    assert_eq!(util::rs_replicas(w.rs(&old)), 5);

    w.d.spec.as_mut().expect("spec").paused = Some(false);
    w.sync();
    assert_eq!(w.rss.len(), 2);
    assert_eq!(
        condition(&w.d, progress::PROGRESSING).map(|c| (c.0, c.1)),
        Some(("True".into(), reason::NEW_RS_CREATED.into())),
        "resumed, then the new ReplicaSet was created"
    );
    w.roll_out(50);
    assert_eq!(util::rs_replicas(w.rs(&old)), 0);
}

#[test]
fn rollback_to_an_old_template_reuses_its_replica_set() {
    let mut w = World::new(deployment(3, rolling(json!("25%"), json!("25%"))));
    w.roll_out(10);
    let first = w.new_rs_name();
    w.set_image("nginx:2");
    w.roll_out(30);
    let second = w.new_rs_name();
    // What kubectl rollout undo does: the old template back into the Deployment.
    w.set_image("nginx:1");
    w.roll_out(30);
    assert_eq!(w.new_rs_name(), first);
    assert_eq!(w.rss.len(), 2, "no third ReplicaSet");
    assert_eq!(annotation(w.rs(&first), util::REVISION).as_deref(), Some("3"));
    assert_eq!(annotation(w.rs(&first), util::REVISION_HISTORY).as_deref(), Some("1"));
    assert_eq!(util::rs_replicas(w.rs(&first)), 3);
    assert_eq!(util::rs_replicas(w.rs(&second)), 0);
    assert_eq!(w.d.metadata.annotations.as_ref().and_then(|a| a.get(util::REVISION)).map(String::as_str), Some("3"));
    let history: Vec<i64> = super::rollback::history(&w.rss).into_iter().map(|h| h.0).collect();
    assert_eq!(history, [2, 3]);
    assert_eq!(
        super::rollback::revision_to_roll_back_to(&w.rss, 0).and_then(|r| r.metadata.name.clone()),
        Some(second)
    );
}

#[test]
fn revision_history_limit_deletes_the_oldest_empty_replica_sets() {
    let mut d = deployment(2, rolling(json!("25%"), json!("25%")));
    d.spec.as_mut().expect("spec").revision_history_limit = Some(2);
    let mut w = World::new(d);
    w.roll_out(10);
    for image in ["2", "3", "4", "5", "6"] {
        w.set_image(&format!("nginx:{image}"));
        w.roll_out(30);
    }
    // 6 revisions made; the 2 most recent old ones are kept with the current one.
    let mut revisions: Vec<String> = w.rss.iter().filter_map(|r| annotation(r, util::REVISION)).collect();
    revisions.sort();
    assert_eq!(revisions, ["4", "5", "6"]);
}

#[test]
fn cleanup_skips_replica_sets_that_still_have_pods() {
    let mut d = deployment(1, rolling(json!("25%"), json!("25%")));
    d.spec.as_mut().expect("spec").revision_history_limit = Some(0);
    let mut w = World::new(d);
    w.roll_out(10);
    w.set_image("nginx:2");
    w.roll_out(30);
    // roll_out's last sync already cleaned up: the old ReplicaSet is gone.
    assert_eq!(w.rss.len(), 1);
    w.set_image("nginx:3");
    w.roll_out(30);
    let old = w
        .rss
        .iter()
        .find(|r| Some(*r) != util::find_new_replica_set(&w.d, &w.rss))
        .and_then(|r| r.metadata.name.clone());
    // Keep a terminating pod on the old ReplicaSet: it must survive the cleanup.
    if let Some(old) = old {
        let i = w.rss.iter().position(|r| r.metadata.name.as_deref() == Some(old.as_str())).expect("old");
        w.rss[i].status.as_mut().expect("status").replicas = 1;
        let p = w.sync();
        assert!(p.actions.iter().all(|a| !matches!(a, Action::DeleteReplicaSet { .. })));
    }
}

#[test]
fn recreate_scales_down_before_creating() {
    let mut w = World::new(deployment(3, json!({"type": "Recreate"})));
    w.sync();
    w.rs_controller();
    w.kubelet();
    w.sync();
    let old = w.new_rs_name();
    assert!(w.complete());
    w.events.clear();
    w.set_image("nginx:2");
    w.sync();
    assert_eq!(w.rss.len(), 1, "old scaled down first, no new ReplicaSet yet");
    assert_eq!(util::rs_replicas(w.rs(&old)), 0);
    // The status still shows the old pods: wait.
    let p = w.sync();
    assert!(p.actions.iter().all(|a| !matches!(a, Action::CreateReplicaSet(_))));
    w.rs_controller();
    w.sync();
    let new = w.new_rs_name();
    assert_ne!(new, old);
    assert_eq!(util::rs_replicas(w.rs(&new)), 3);
    assert_eq!(
        w.events,
        [
            format!("ScalingReplicaSet: Scaled down replica set {old} from 3 to 0"),
            format!("ScalingReplicaSet: Scaled up replica set {new} from 0 to 3")
        ]
    );
    // Recreate allows no unavailability.
    assert_eq!(condition(&w.d, progress::AVAILABLE).map(|c| c.0), Some("False".into()));
    w.rs_controller();
    w.kubelet();
    w.sync();
    assert!(w.complete());
}

#[test]
fn selecting_all_pods_is_refused() {
    let mut d = deployment(1, rolling(json!(1), json!(0)));
    d.spec.as_mut().expect("spec").selector = Default::default();
    d.metadata.generation = Some(3);
    let mut w = World::new(d);
    let p = w.sync();
    assert_eq!(w.events, ["SelectingAll: This deployment is selecting all pods. A non-empty selector is required."]);
    assert!(matches!(p.actions.last(), Some(Action::UpdateStatus(_))));
    assert_eq!(w.d.status.as_ref().and_then(|s| s.observed_generation), Some(3));
}

#[test]
fn scaling_to_zero_and_back() {
    let mut w = World::new(deployment(4, rolling(json!("25%"), json!("25%"))));
    w.roll_out(10);
    let name = w.new_rs_name();
    w.set_replicas(0);
    w.sync();
    assert_eq!(util::rs_replicas(w.rs(&name)), 0);
    w.rs_controller();
    w.sync();
    w.set_replicas(2);
    w.sync();
    assert_eq!(util::rs_replicas(w.rs(&name)), 2);
    assert_eq!(
        w.events.last().map(String::as_str),
        Some(format!("ScalingReplicaSet: Scaled up replica set {name} from 0 to 2").as_str())
    );
}
