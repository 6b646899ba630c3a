//! Rollback. kubectl 1.35's `rollout undo` is client-side (kubectl
//! `pkg/polymorphichelpers/rollback.go`): it copies an old ReplicaSet's template (without the
//! `pod-template-hash` label) and its annotations into the Deployment with a JSON patch. The
//! controller then finds that old ReplicaSet as the *new* one (`util::find_new_replica_set`), raises
//! its revision to the next number and appends the old number to `revision-history`
//! (`util::set_new_replica_set_annotations`), and rolls out to it like any template change.
//!
//! The legacy controller-side rollback (`deprecated.deployment.rollback.to`, `rollback.go`) only
//! served the extensions/v1beta1 and apps/v1beta1 rollback subresource, which apps/v1 lacks; Skiff
//! does not act on it. This module holds the read side kubectl's `rollout history` uses, so that
//! tests can check what kubectl will print.

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::util;

/// The annotation `kubectl rollout history` shows as CHANGE-CAUSE.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// `(revision, change-cause)` per ReplicaSet, sorted by revision, as `kubectl rollout history`
/// lists them (`<none>` when there is no cause). ReplicaSets with an unparsable revision are left
/// out.
pub fn history(rss: &[ReplicaSet]) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = rss
        .iter()
        .filter_map(|rs| {
            let revision = util::revision(&rs.metadata).ok()?;
            let cause = rs.metadata.annotations.as_ref().and_then(|a| a.get(CHANGE_CAUSE)).cloned();
            Some((revision, cause.unwrap_or_else(|| "<none>".to_string())))
        })
        .collect();
    out.sort();
    out
}

/// The ReplicaSet `kubectl rollout undo --to-revision=N` picks: revision N, or for 0 the one with
/// the second-highest revision ("previous"; ReplicaSets without a positive, parsable revision never
/// count as previous).
pub fn revision_to_roll_back_to(rss: &[ReplicaSet], to_revision: i64) -> Option<&ReplicaSet> {
    let revised = rss.iter().filter_map(|rs| util::revision(&rs.metadata).ok().map(|r| (r, rs)));
    if to_revision > 0 {
        return revised.into_iter().find(|(r, _)| *r == to_revision).map(|(_, rs)| rs);
    }
    let mut positive: Vec<(i64, &ReplicaSet)> = revised.filter(|(r, _)| *r > 0).collect();
    positive.sort_by_key(|(r, _)| *r);
    positive.len().checked_sub(2).map(|i| positive[i].1)
}
