//! The label and field selectors of a LIST or WATCH, evaluated on stored objects: only the fields
//! the selectors read are decoded from an object's text, and nothing at all without selectors.

use skiff_api::selector::{FieldSelector, LabelSelector};
use skiff_api::{ApiError, ResourceInfo, meta};
use skiff_store::{Fields, Json};

use crate::request::Query;

pub struct Selection {
    labels: LabelSelector,
    fields: Option<FieldSelector>,
    /// What `matches` decodes; `None` when nothing is selected.
    read: Option<Fields>,
}

impl Selection {
    /// The selectors of `q` (`labelSelector`, `fieldSelector` checked against `r`'s fields); 400
    /// if either does not parse.
    pub fn parse(q: &Query, r: &ResourceInfo) -> Result<Selection, ApiError> {
        let labels = match &q.label_selector {
            Some(s) => LabelSelector::parse(s)?,
            None => LabelSelector::everything(),
        };
        let fields = match &q.field_selector {
            Some(s) => Some(FieldSelector::parse(s, r)?),
            None => None,
        };
        Ok(Selection::new(labels, fields))
    }

    pub fn new(labels: LabelSelector, fields: Option<FieldSelector>) -> Selection {
        let fields = fields.filter(|f| !f.is_empty());
        let read = (!labels.is_empty() || fields.is_some()).then(|| {
            let mut read = Fields::default();
            read.add(&["metadata", "labels"]);
            for path in fields.iter().flat_map(FieldSelector::paths) {
                read.add(&path);
            }
            read
        });
        Selection { labels, fields, read }
    }

    /// Whether every object is selected (no selector narrows it).
    pub fn is_everything(&self) -> bool {
        self.read.is_none()
    }

    pub fn matches(&self, obj: &Json) -> bool {
        let Some(read) = &self.read else { return true };
        let obj = obj.parse_fields(read);
        self.labels.matches(meta::labels(&obj)) && self.fields.as_ref().is_none_or(|f| f.matches(&obj))
    }

    /// The name `metadata.name=X` pins, if the field selector has that term.
    pub fn name_equals(&self) -> Option<&str> {
        self.fields.as_ref().and_then(FieldSelector::name_equals)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use skiff_api::resource::lookup;

    use super::*;

    fn selection(resource: &str, labels: &str, fields: &str) -> Selection {
        let r = lookup("", "v1", resource).expect("resource");
        let q = Query {
            label_selector: Some(labels.to_owned()).filter(|s| !s.is_empty()),
            field_selector: Some(fields.to_owned()).filter(|s| !s.is_empty()),
            ..Query::default()
        };
        Selection::parse(&q, r).expect("selectors")
    }

    /// The decision on the decoded fields is the decision on the whole object, for every field
    /// selectors can name on pods, nodes and events (including those read from a second place).
    #[test]
    fn deciding_on_the_fields_read_is_deciding_on_the_whole_object() {
        let pods = [
            json!({"metadata": {"name": "a", "namespace": "d", "labels": {"app": "web"}, "managedFields": [{}]},
                   "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                            "serviceAccountName": "sa", "hostNetwork": true, "containers": [{"name": "c"}]},
                   "status": {"phase": "Running", "podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.1"}], "nominatedNodeName": "n2"}}),
            json!({"metadata": {"name": "b", "namespace": "d"}, "spec": {}, "status": {"podIP": "10.0.0.9"}}),
            json!({"metadata": {"name": "c"}}),
        ];
        let pod_selectors = [
            ("app=web", ""),
            ("app!=web", ""),
            ("", "spec.nodeName!="),
            ("", "spec.nodeName=n1"),
            ("app", "spec.restartPolicy=Always,spec.schedulerName=default-scheduler"),
            ("", "spec.serviceAccountName=sa"),
            ("", "spec.hostNetwork=false"),
            ("", "spec.hostNetwork=true"),
            ("", "status.phase=Running"),
            ("", "status.podIP=10.0.0.1"),
            ("", "status.podIP=10.0.0.9"),
            ("", "status.nominatedNodeName=n2"),
            ("", "metadata.name=a,metadata.namespace=d"),
        ];
        let events = [
            json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "a"}, "reason": "Started",
                   "source": {"component": "kubelet"}, "type": "Normal", "reportingComponent": "kubelet"}),
            json!({"metadata": {"name": "f"}, "regarding": {"kind": "Pod", "name": "a"},
                   "deprecatedSource": {"component": "kubelet"}, "reportingController": "kubelet"}),
        ];
        let event_selectors = [
            "involvedObject.kind=Pod,involvedObject.name=a",
            "source=kubelet",
            "reportingComponent=kubelet",
            "reason=Started,type=Normal",
        ];
        let nodes =
            [json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}}), json!({"metadata": {"name": "m"}})];
        let mut cases: Vec<(Selection, &Value)> = Vec::new();
        for (labels, fields) in pod_selectors {
            cases.extend(pods.iter().map(|p| (selection("pods", labels, fields), p)));
        }
        for fields in event_selectors {
            cases.extend(events.iter().map(|e| (selection("events", "", fields), e)));
        }
        for fields in ["spec.unschedulable=true", "spec.unschedulable=false"] {
            cases.extend(nodes.iter().map(|n| (selection("nodes", "", fields), n)));
        }
        let mut selected = 0;
        for (s, obj) in &cases {
            let whole = s.labels.matches(meta::labels(obj)) && s.fields.as_ref().is_none_or(|f| f.matches(obj));
            assert_eq!(s.matches(&Json::encode(obj)), whole, "{obj} with {:?} {:?}", s.labels.to_string(), s.fields);
            selected += usize::from(whole);
        }
        assert!(selected > 10 && selected < cases.len(), "the cases select some objects and not others");
    }

    #[test]
    fn no_selector_selects_everything_without_decoding() {
        let s = selection("pods", "", "");
        assert!(s.is_everything());
        assert!(s.matches(&Json::encode(&json!([1]))));
        assert!(!selection("pods", "app=web", "").is_everything());
        assert_eq!(selection("pods", "", "metadata.name=a").name_equals(), Some("a"));
    }
}
