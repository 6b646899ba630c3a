//! The arithmetic and bookkeeping shared by every strategy (k/k `pkg/controller/deployment/util/
//! deployment_util.go`): the revision and replica annotations, maxSurge/maxUnavailable resolution,
//! finding the new ReplicaSet, the orderings upstream sorts ReplicaSets by, and proportions.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::hash;

/// The revision of a ReplicaSet, copied onto its Deployment.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The earlier revisions of a ReplicaSet that was rolled back to (comma list).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when the ReplicaSet was last scaled by the controller.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` of the Deployment when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The legacy rollback request (extensions/v1beta1); not acted on by Skiff.
pub const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// kubectl's client-side apply record.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The label that keeps the ReplicaSets of one Deployment apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Upstream caps `revision-history` at this many characters, dropping the oldest entries.
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Why a maxSurge/maxUnavailable value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FencepostError {
    #[error("invalid value for IntOrString: invalid type: string is not a percentage")]
    NotAPercentage,
    #[error("invalid value {0:?}: {1}")]
    BadPercentage(String, std::num::ParseIntError),
}

/// `spec.replicas`, defaulted to 1 as the API server does.
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// A ReplicaSet's `spec.replicas` (defaulted to 1).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// A ReplicaSet's `status.replicas`: the pods it has now.
pub fn rs_actual(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

pub fn set_rs_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

/// Anything but `Recreate` is a rolling update (the server defaults the type).
pub fn is_rolling_update(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) != Some("Recreate")
}

pub fn is_paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

/// `progressDeadlineSeconds` when it is set and not "forever" (MaxInt32).
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).filter(|s| *s != i32::MAX)
}

/// `revisionHistoryLimit` when it is set and not MaxInt32.
pub fn revision_history_limit(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.revision_history_limit).filter(|s| *s != i32::MAX)
}

/// `intstr.GetScaledValueFromIntOrPercent`: an int as is, a percentage of `total` rounded up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, FencepostError> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(number) = s.strip_suffix('%') else { return Err(FencepostError::NotAPercentage) };
            let pct: i64 = number.parse().map_err(|e| FencepostError::BadPercentage(s.clone(), e))?;
            let product = pct * i64::from(total);
            let value = if round_up {
                product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
            } else {
                product.div_euclid(100)
            };
            Ok(i32::try_from(value).unwrap_or(i32::MAX))
        }
    }
}

/// `ResolveFenceposts`: maxSurge rounds up, maxUnavailable rounds down, and both 0 makes
/// maxUnavailable 1 (so a rollout can always move). Missing values count as 0.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), FencepostError> {
    let surge = max_surge.map_or(Ok(0), |v| scaled_value(v, desired, true))?;
    let unavailable = max_unavailable.map_or(Ok(0), |v| scaled_value(v, desired, false))?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(ru.and_then(|r| r.max_surge.as_ref()), ru.and_then(|r| r.max_unavailable.as_ref()), replicas(d))
        .unwrap_or((0, 0))
}

/// `MaxSurge`: 0 unless rolling.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    fenceposts(d).0
}

/// `MaxUnavailable`: 0 unless rolling or when scaled to 0, capped at `spec.replicas`.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let desired = replicas(d);
    if !is_rolling_update(d) || desired == 0 {
        return 0;
    }
    fenceposts(d).1.min(desired)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

/// The `revision` annotation: 0 when missing, an error when unparsable (`deploymentutil.Revision`).
pub fn revision(meta: &ObjectMeta) -> Result<i64, std::num::ParseIntError> {
    annotation(meta, REVISION).map_or(Ok(0), str::parse)
}

/// The highest parsable revision among the ReplicaSets (0 if none).
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter().filter_map(|rs| revision(&rs.metadata).ok()).max().unwrap_or(0).max(0)
}

pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, DESIRED_REPLICAS).and_then(|v| v.parse().ok())
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, MAX_REPLICAS).and_then(|v| v.parse().ok())
}

/// Annotations the controller manages itself, never copied between Deployment and ReplicaSet.
pub fn skip_copy_annotation(key: &str) -> bool {
    matches!(key, LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO)
}

/// Copies the Deployment's annotations (except the skipped ones) onto the ReplicaSet; true if any
/// changed. Annotations the ReplicaSet has that the Deployment lacks are kept, as upstream does.
pub fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy_annotation(k) || target.get(k) == Some(v) {
            continue;
        }
        target.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// `SetReplicasAnnotations`: desired-replicas and max-replicas; true if either changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if a.get(key) != Some(&value) {
            a.insert(key.to_string(), value);
            changed = true;
        }
    }
    changed
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// `SetNewReplicaSetAnnotations`: copy the Deployment's annotations, raise the revision to
/// `new_revision` (recording the old one in `revision-history` when an existing ReplicaSet becomes
/// new again, i.e. a rollback), and for a ReplicaSet about to be created set the replica
/// annotations. True if anything changed.
pub fn set_new_replica_set_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: i64, exists: bool) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = a.get(REVISION).cloned();
    let old_number = match old.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) => n,
        // An unparsable revision is left alone, as upstream does.
        Some(Err(_)) => return changed,
    };
    if old_number < new_revision {
        a.insert(REVISION.to_string(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = append_revision_history(a.get(REVISION_HISTORY).map(String::as_str).unwrap_or(""), &old);
            if let Some(history) = history {
                a.insert(REVISION_HISTORY.to_string(), history);
            }
        }
    }
    if !exists {
        let desired = replicas(d);
        changed |= set_replicas_annotations(rs, desired, desired + max_surge(d));
    }
    changed
}

/// Appends `old` to a comma-separated revision history, dropping the oldest entries to stay within
/// `MAX_REVISION_HISTORY_CHARS`. None when even dropping everything would not make room.
pub fn append_revision_history(history: &str, old: &str) -> Option<String> {
    if history.is_empty() {
        return Some(old.to_string());
    }
    let entries: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old.len() + 1;
    let mut start = 0;
    while total > MAX_REVISION_HISTORY_CHARS && start < entries.len() {
        total -= entries[start].len() + 1;
        start += 1;
    }
    if total > MAX_REVISION_HISTORY_CHARS {
        return None;
    }
    let mut kept: Vec<&str> = entries[start..].to_vec();
    kept.push(old);
    Some(kept.join(","))
}

/// Sets the Deployment's revision annotation; true if it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let a = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if a.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    a.insert(REVISION.to_string(), revision.to_string());
    true
}

/// The template as upstream's `Semantic.DeepEqual` sees it, without the `pod-template-hash` label.
pub fn template_without_hash(t: &PodTemplateSpec) -> serde_json::Value {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    hash::normalize(&serde_json::to_value(&t).unwrap_or_default())
}

/// `EqualIgnoreHash`: templates equal once the `pod-template-hash` label is ignored.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    template_without_hash(a) == template_without_hash(b)
}

pub fn deployment_template(d: &Deployment) -> PodTemplateSpec {
    d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default()
}

pub fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default()
}

/// `ReplicaSetsByCreationTimestamp`: oldest first, name breaks ties.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
    ta.cmp(&tb).then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// `ReplicaSetsByRevision`: lowest revision first, then by creation.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let ra = revision(&a.metadata).unwrap_or(0);
    let rb = revision(&b.metadata).unwrap_or(0);
    ra.cmp(&rb).then_with(|| by_creation(a, b))
}

/// `ReplicaSetsBySizeOlder`: biggest first; for equal sizes the older first (scaling down).
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b).cmp(&rs_replicas(a)).then_with(|| by_creation(a, b))
}

/// `ReplicaSetsBySizeNewer`: biggest first; for equal sizes the newer first (scaling up).
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b).cmp(&rs_replicas(a)).then_with(|| by_creation(b, a))
}

/// `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the Deployment's.
pub fn find_new_replica_set<'a>(d: &Deployment, rss: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    let want = template_without_hash(&deployment_template(d));
    let mut sorted: Vec<&ReplicaSet> = rss.iter().collect();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted.into_iter().find(|rs| template_without_hash(&rs_template(rs)) == want)
}

/// `NewRSNewReplicas`: how big the new ReplicaSet may be now. Rolling: grow by what the surge
/// allows (counting `spec.replicas` of all ReplicaSets), never past `spec.replicas`. Recreate: all.
pub fn new_rs_new_replicas<'a>(
    d: &Deployment,
    all: impl IntoIterator<Item = &'a ReplicaSet>,
    new_rs: &ReplicaSet,
) -> i32 {
    let desired = replicas(d);
    if !is_rolling_update(d) {
        return desired;
    }
    let current: i32 = all.into_iter().map(rs_replicas).sum();
    let max_total = desired + max_surge(d);
    if current >= max_total {
        return rs_replicas(new_rs);
    }
    let up = (max_total - current).min(desired - rs_replicas(new_rs));
    rs_replicas(new_rs) + up
}

/// `IsSaturated`: the new ReplicaSet has, wants and makes available all the Deployment's replicas.
pub fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let desired = replicas(d);
    desired_replicas_annotation(rs) == Some(desired) && rs_replicas(rs) == desired && rs_available(rs) == desired
}

/// `getReplicaSetFraction`: how many replicas this ReplicaSet gains (or loses) when the
/// Deployment's maximum size moves from the annotated `max-replicas` to the current one.
pub fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let desired = replicas(d);
    if desired == 0 {
        return -rs_replicas(rs);
    }
    let max_now = desired + max_surge(d);
    let before = match max_replicas_annotation(rs) {
        Some(n) if n != 0 => n,
        _ => d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
    };
    if before == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(max_now) / f64::from(before);
    round_half_away(size) - rs_replicas(rs)
}

/// `integer.RoundToInt32`.
fn round_half_away(x: f64) -> i32 {
    let r = if x < 0.0 { x - 0.5 } else { x + 0.5 };
    r.trunc() as i32
}

/// `GetProportion`: this ReplicaSet's share of `to_add`, given `added` so far, clamped so the total
/// never overshoots.
pub fn get_proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
            }
        }))
        .expect("deployment")
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.to_string())
    }

    #[test]
    fn rounding_table() {
        // (replicas, maxSurge, maxUnavailable) → (resolved surge, resolved unavailable)
        let cases = [
            (10, pct("25%"), pct("25%"), (3, 2)),
            (3, pct("25%"), pct("25%"), (1, 0)),
            (1, pct("25%"), pct("25%"), (1, 0)),
            (4, pct("25%"), pct("25%"), (1, 1)),
            (0, pct("25%"), pct("25%"), (0, 1)),
            (10, IntOrString::Int(0), IntOrString::Int(0), (0, 1)),
            (10, pct("0%"), pct("0%"), (0, 1)),
            (3, IntOrString::Int(0), pct("10%"), (0, 1)),
            (10, pct("100%"), IntOrString::Int(0), (10, 0)),
            (7, pct("50%"), pct("50%"), (4, 3)),
        ];
        for (replicas, surge, unavailable, want) in cases {
            let got = resolve_fenceposts(Some(&surge), Some(&unavailable), replicas).expect("resolves");
            assert_eq!(got, want, "replicas {replicas} surge {surge:?} unavailable {unavailable:?}");
        }
    }

    #[test]
    fn max_unavailable_is_capped_and_zero_for_zero_replicas() {
        assert_eq!(max_unavailable(&deployment(2, IntOrString::Int(0), IntOrString::Int(5))), 2);
        assert_eq!(max_unavailable(&deployment(0, pct("25%"), pct("25%"))), 0);
        assert_eq!(max_surge(&deployment(10, pct("25%"), pct("25%"))), 3);
        let mut recreate = deployment(10, pct("25%"), pct("25%"));
        recreate.spec.as_mut().expect("spec").strategy.as_mut().expect("strategy").type_ = Some("Recreate".into());
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
    }

    #[test]
    fn bad_fenceposts_are_errors() {
        assert_eq!(scaled_value(&pct("25"), 10, true), Err(FencepostError::NotAPercentage));
        assert!(matches!(scaled_value(&pct("x%"), 10, true), Err(FencepostError::BadPercentage(..))));
    }

    fn rs(name: &str, replicas: i32, annotations: &[(&str, &str)]) -> ReplicaSet {
        let a: BTreeMap<String, String> = annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": a},
            "spec": {"replicas": replicas, "selector": {}},
        }))
        .expect("rs")
    }

    #[test]
    fn new_replica_set_annotations_on_create_and_on_rollback() {
        let mut d = deployment(10, pct("25%"), pct("25%"));
        d.metadata.annotations = Some(BTreeMap::from([
            ("kubernetes.io/change-cause".to_string(), "v2".to_string()),
            (REVISION.to_string(), "7".to_string()),
            (LAST_APPLIED.to_string(), "{}".to_string()),
        ]));
        let mut fresh = rs("web-a", 3, &[]);
        assert!(set_new_replica_set_annotations(&d, &mut fresh, 3, false));
        let want: BTreeMap<String, String> =
            [("kubernetes.io/change-cause", "v2"), (REVISION, "3"), (DESIRED_REPLICAS, "10"), (MAX_REPLICAS, "13")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(fresh.metadata.annotations, Some(want));

        // An old ReplicaSet that becomes new again: new revision, old one in the history.
        let mut old = rs("web-b", 0, &[(REVISION, "1"), (REVISION_HISTORY, "0")]);
        assert!(set_new_replica_set_annotations(&d, &mut old, 4, true));
        let a = old.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(a.get(REVISION).map(String::as_str), Some("4"));
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("0,1"));
        assert_eq!(a.get(DESIRED_REPLICAS), None, "existing ReplicaSets keep their replica annotations");
        // Idempotent.
        assert!(!set_new_replica_set_annotations(&d, &mut old, 4, true));
    }

    #[test]
    fn revision_history_is_capped() {
        assert_eq!(append_revision_history("", "3").as_deref(), Some("3"));
        assert_eq!(append_revision_history("1,2", "3").as_deref(), Some("1,2,3"));
        let long: Vec<String> = (0..500).map(|i| format!("{i:03}")).collect();
        let long = long.join(",");
        let got = append_revision_history(&long, "999").expect("fits after dropping");
        assert!(got.len() <= MAX_REVISION_HISTORY_CHARS);
        assert!(got.ends_with(",999"));
        assert!(!got.starts_with("000,"));
    }

    #[test]
    fn max_revision_skips_unparsable() {
        let rss = [
            rs("a", 0, &[(REVISION, "2")]),
            rs("b", 0, &[(REVISION, "x")]),
            rs("c", 0, &[(REVISION, "5")]),
            rs("d", 0, &[]),
        ];
        assert_eq!(max_revision(&rss), 5);
    }

    #[test]
    fn equal_ignore_hash_ignores_only_the_hash_label() {
        let d = deployment(1, pct("25%"), pct("25%"));
        let mut t = deployment_template(&d);
        t.metadata
            .as_mut()
            .expect("meta")
            .labels
            .as_mut()
            .expect("labels")
            .insert(POD_TEMPLATE_HASH.into(), "abc".into());
        assert!(equal_ignore_hash(&t, &deployment_template(&d)));
        t.metadata.as_mut().expect("meta").labels.as_mut().expect("labels").insert("tier".into(), "x".into());
        assert!(!equal_ignore_hash(&t, &deployment_template(&d)));
    }

    #[test]
    fn new_rs_new_replicas_respects_surge() {
        let d = deployment(10, pct("25%"), pct("25%"));
        let old = rs("old", 10, &[]);
        let new = rs("new", 0, &[]);
        assert_eq!(new_rs_new_replicas(&d, [&old, &new], &new), 3);
        let new = rs("new", 3, &[]);
        assert_eq!(new_rs_new_replicas(&d, [&old, &new], &new), 3, "at maxTotal, no growth");
        let old = rs("old", 5, &[]);
        assert_eq!(new_rs_new_replicas(&d, [&old, &new], &new), 8);
        let old = rs("old", 0, &[]);
        assert_eq!(new_rs_new_replicas(&d, [&old, &new], &new), 10, "never past spec.replicas");
    }

    #[test]
    fn proportions_round_and_clamp() {
        // Deployment scaled from 10 (max 13) to 20 (max 25).
        let d = deployment(20, pct("25%"), pct("25%"));
        let a = rs("a", 8, &[(MAX_REPLICAS, "13")]);
        // 8 * 25 / 13 = 15.38 → 15, so +7.
        assert_eq!(replica_set_fraction(&a, &d), 7);
        assert_eq!(get_proportion(&a, &d, 12, 0), 7);
        assert_eq!(get_proportion(&a, &d, 12, 10), 2, "clamped to what is left");
        assert_eq!(get_proportion(&a, &d, 12, 12), 0);
        let d0 = deployment(0, pct("25%"), pct("25%"));
        assert_eq!(replica_set_fraction(&a, &d0), -8);
        assert_eq!(round_half_away(2.5), 3);
        assert_eq!(round_half_away(-2.5), -3);
    }
}
