//! The scheduler's core/v1 Events (`Scheduled`, `FailedScheduling`), written directly rather than
//! through `skiff_controllers::events::Recorder`: the scheduler does not depend on the controllers
//! crate, and its events never aggregate (each attempt is news), so the small pattern is repeated
//! here.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

/// The Event upstream's scheduler records about `pod`: named `<pod>.<nanoseconds in hex>` like
/// client-go's recorder, from `component` (`default-scheduler`), with an `action`
/// (`Binding`, `Scheduling`).
pub fn pod_event(
    pod: &Pod,
    component: &str,
    kind: &str,
    reason: &str,
    action: &str,
    message: &str,
    now: Timestamp,
) -> Event {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Pod".to_string()),
            name: Some(name),
            namespace: Some(namespace),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            field_path: None,
        },
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(kind.to_string()),
        action: Some(action.to_string()),
        source: Some(EventSource { component: Some(component.to_string()), host: None }),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(component.to_string()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        ..Event::default()
    }
}

/// Creates the Event; failures are logged, never returned (Events are best-effort upstream too).
pub async fn record(client: Client, event: Event) {
    let namespace = event.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let api: Api<Event> = Api::namespaced(client, &namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(error = %e, reason = ?event.reason, "cannot record an event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scheduled_event_shape() {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "web-1", "namespace": "prod", "uid": "u1", "resourceVersion": "7"}}),
        )
        .expect("a Pod");
        let now = Timestamp::from_second(1_700_000_000).expect("a time");
        let e = pod_event(
            &pod,
            "default-scheduler",
            "Normal",
            "Scheduled",
            "Binding",
            "Successfully assigned prod/web-1 to n1",
            now,
        );
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v["metadata"]["name"], json!("web-1.17979cfe362a0000"));
        assert_eq!(v["metadata"]["namespace"], json!("prod"));
        assert_eq!(
            v["involvedObject"],
            json!({"apiVersion": "v1", "kind": "Pod", "name": "web-1", "namespace": "prod", "uid": "u1", "resourceVersion": "7"})
        );
        assert_eq!(v["source"], json!({"component": "default-scheduler"}));
        assert_eq!(
            (v["type"].clone(), v["reason"].clone(), v["action"].clone()),
            (json!("Normal"), json!("Scheduled"), json!("Binding"))
        );
        assert_eq!(v["firstTimestamp"], json!("2023-11-14T22:13:20Z"));
    }
}
