//! The query options of the pod subresources a node agent serves: `PodLogOptions` (`pods/log`) and
//! `PodExecOptions` (`pods/exec`), parsed and validated as kube-apiserver does, the container they
//! address (`validateContainer` in `pkg/registry/core/pod/strategy.go`), and the query the agent is
//! sent.

use jiff::Timestamp;
use serde_json::Value;
use skiff_api::{ApiError, Cause, meta};

/// The boolean of a query parameter as the apiserver's parameter codec reads it
/// (`Convert_Slice_string_To_bool`): `0` and `false` (any case) are false, anything else is true.
fn query_bool(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("false"))
}

/// An optional integer parameter; empty means unset, as the parameter codec reads it.
fn query_int(name: &str, v: &str) -> Result<Option<i64>, ApiError> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("invalid value {v:?} for query parameter {name}: not an integer")))
}

/// `PodLogOptions`, from the query of `GET pods/{name}/log`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub since_seconds: Option<i64>,
    pub since_time: Option<Timestamp>,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
    /// Accepted and without effect: Skiff never verifies an agent's serving certificate (see
    /// [`super::tls`]).
    pub insecure_skip_tls_verify_backend: bool,
}

impl LogOptions {
    /// Parses the query; a value that is not of its parameter's type is a 400. Unknown parameters are
    /// ignored, as the apiserver ignores them.
    pub fn parse(query: Option<&str>) -> Result<LogOptions, ApiError> {
        let mut o = LogOptions::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let v = v.as_ref();
            match k.as_ref() {
                "container" => o.container = Some(v.to_string()).filter(|c| !c.is_empty()),
                "follow" => o.follow = query_bool(v),
                "previous" => o.previous = query_bool(v),
                "timestamps" => o.timestamps = query_bool(v),
                "insecureSkipTLSVerifyBackend" => o.insecure_skip_tls_verify_backend = query_bool(v),
                "sinceSeconds" => o.since_seconds = query_int("sinceSeconds", v)?,
                "tailLines" => o.tail_lines = query_int("tailLines", v)?,
                "limitBytes" => o.limit_bytes = query_int("limitBytes", v)?,
                "sinceTime" if v.is_empty() => o.since_time = None,
                "sinceTime" => {
                    // metav1.Time reads RFC 3339.
                    let t = v.parse::<Timestamp>().map_err(|_| {
                        ApiError::bad_request(format!(
                            "invalid value {v:?} for query parameter sinceTime: not an RFC 3339 time"
                        ))
                    })?;
                    o.since_time = Some(t);
                }
                _ => {}
            }
        }
        Ok(o)
    }

    /// `ValidatePodLogOptions`: a 422 `PodLogOptions "{pod}" is invalid` listing every problem.
    pub fn validate(&self, pod: &str) -> Result<(), ApiError> {
        let mut causes = Vec::new();
        let invalid = |field: &str, value: i64, msg: &str| {
            Cause::new("FieldValueInvalid", field, format!("Invalid value: {value}: {msg}"))
        };
        if let Some(n) = self.tail_lines.filter(|n| *n < 0) {
            causes.push(invalid("tailLines", n, "must be greater than or equal to 0"));
        }
        if let Some(n) = self.limit_bytes.filter(|n| *n < 1) {
            causes.push(invalid("limitBytes", n, "must be greater than 0"));
        }
        match (self.since_seconds, self.since_time) {
            (Some(_), Some(_)) => causes.push(Cause::new(
                "FieldValueForbidden",
                "",
                "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            )),
            (Some(n), None) if n < 1 => causes.push(invalid("sinceSeconds", n, "must be greater than 0")),
            _ => {}
        }
        if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid("PodLogOptions", "", pod, causes)) }
    }

    /// The agent's `/containerLogs` query, built as `LogLocation` builds the kubelet's: only the
    /// options that are set, `sinceTime` in RFC 3339 to the second.
    pub fn agent_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if self.follow {
            q.append_pair("follow", "true");
        }
        if self.previous {
            q.append_pair("previous", "true");
        }
        if self.timestamps {
            q.append_pair("timestamps", "true");
        }
        if let Some(n) = self.since_seconds {
            q.append_pair("sinceSeconds", &n.to_string());
        }
        if let Some(t) = self.since_time {
            let seconds = Timestamp::from_second(t.as_second()).unwrap_or(t);
            q.append_pair("sinceTime", &seconds.to_string());
        }
        if let Some(n) = self.tail_lines {
            q.append_pair("tailLines", &n.to_string());
        }
        if let Some(n) = self.limit_bytes {
            q.append_pair("limitBytes", &n.to_string());
        }
        q.finish()
    }
}

/// `PodExecOptions`, from the query of `GET|POST pods/{name}/exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    /// Parses the query (`command` may repeat; its order is kept).
    pub fn parse(query: Option<&str>) -> ExecOptions {
        let mut o = ExecOptions::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let v = v.as_ref();
            match k.as_ref() {
                "container" => o.container = Some(v.to_string()).filter(|c| !c.is_empty()),
                "command" => o.command.push(v.to_string()),
                "stdin" => o.stdin = query_bool(v),
                "stdout" => o.stdout = query_bool(v),
                "stderr" => o.stderr = query_bool(v),
                "tty" => o.tty = query_bool(v),
                _ => {}
            }
        }
        o
    }

    /// A command and at least one stream are required (400s, worded as kubectl and the kubelet word
    /// them), refused here rather than after a round trip to the agent.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.command.is_empty() {
            return Err(ApiError::bad_request("you must specify at least 1 command"));
        }
        if !self.stdin && !self.stdout && !self.stderr {
            return Err(ApiError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
        }
        Ok(())
    }

    /// The agent's `/exec` query (the streaming contract): the command in order, then every stream
    /// flag spelled out.
    pub fn agent_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for c in &self.command {
            q.append_pair("command", c);
        }
        let flag = |b: bool| if b { "true" } else { "false" };
        q.append_pair("stdin", flag(self.stdin));
        q.append_pair("stdout", flag(self.stdout));
        q.append_pair("stderr", flag(self.stderr));
        q.append_pair("tty", flag(self.tty));
        q.finish()
    }
}

/// The names of a pod's containers in `podutil.VisitContainers` order: init containers, containers,
/// ephemeral containers.
fn all_container_names(pod: &Value) -> Vec<&str> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|list| pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect()
}

/// The container a log or exec request addresses (`validateContainer`): the one asked for, which must
/// be one of the pod's (init and ephemeral containers count); else the pod's only container. The
/// `kubectl.kubernetes.io/default-container` annotation is kubectl's to apply, not the server's.
pub fn choose_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = meta::name(pod);
    let names = all_container_names(pod);
    if let Some(c) = requested.filter(|c| !c.is_empty()) {
        return if names.contains(&c) {
            Ok(c.to_string())
        } else {
            Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}")))
        };
    }
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    match containers {
        [only] => Ok(only.get("name").and_then(Value::as_str).unwrap_or("").to_string()),
        [] => Err(ApiError::bad_request(format!("a container name must be specified for pod {name}"))),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log(q: &str) -> LogOptions {
        LogOptions::parse(Some(q)).expect("parses")
    }

    #[test]
    fn parses_log_options() {
        let o = log(
            "container=app&follow=true&previous=1&timestamps=True&sinceSeconds=10&tailLines=0&limitBytes=5&insecureSkipTLSVerifyBackend=true&bogus=x",
        );
        assert_eq!(
            o,
            LogOptions {
                container: Some("app".into()),
                follow: true,
                previous: true,
                timestamps: true,
                since_seconds: Some(10),
                since_time: None,
                tail_lines: Some(0),
                limit_bytes: Some(5),
                insecure_skip_tls_verify_backend: true,
            }
        );
        assert_eq!(LogOptions::parse(None).expect("empty"), LogOptions::default());
        let o = log("follow=false&previous=0&tailLines=&container=");
        assert_eq!(o, LogOptions::default());
        let o = log("sinceTime=2024-01-02T03%3A04%3A05.5Z");
        assert_eq!(o.since_time, Some("2024-01-02T03:04:05.5Z".parse().expect("time")));
    }

    #[test]
    fn bad_log_parameter_types_are_400() {
        for q in ["tailLines=x", "sinceSeconds=1.5", "limitBytes=ten", "sinceTime=yesterday"] {
            let e = LogOptions::parse(Some(q)).expect_err(q);
            assert_eq!((e.code, e.reason), (400, "BadRequest"), "{q}");
        }
    }

    #[test]
    fn validates_log_options_as_the_apiserver() {
        let cases: &[(&str, &str)] = &[
            (
                "tailLines=-1",
                "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0",
            ),
            ("limitBytes=0", "PodLogOptions \"p\" is invalid: limitBytes: Invalid value: 0: must be greater than 0"),
            (
                "sinceSeconds=0",
                "PodLogOptions \"p\" is invalid: sinceSeconds: Invalid value: 0: must be greater than 0",
            ),
            (
                "sinceSeconds=0&sinceTime=2024-01-02T03:04:05Z",
                "PodLogOptions \"p\" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            ),
            (
                "tailLines=-2&limitBytes=-1",
                "PodLogOptions \"p\" is invalid: [tailLines: Invalid value: -2: must be greater than or equal to 0, limitBytes: Invalid value: -1: must be greater than 0]",
            ),
        ];
        for (q, message) in cases {
            let e = log(q).validate("p").expect_err(q);
            assert_eq!((e.code, e.reason), (422, "Invalid"), "{q}");
            assert_eq!(e.message, *message, "{q}");
            assert_eq!(e.kind.as_deref(), Some("PodLogOptions"));
            assert_eq!(e.name.as_deref(), Some("p"));
        }
        let e = log("sinceSeconds=5&sinceTime=2024-01-02T03:04:05Z").validate("p").expect_err("both");
        assert_eq!(e.causes[0].reason, "FieldValueForbidden");
        assert_eq!(e.causes[0].field, "");
        for ok in ["", "tailLines=0", "limitBytes=1", "sinceSeconds=1", "sinceTime=2024-01-02T03:04:05Z"] {
            log(ok).validate("p").expect(ok);
        }
    }

    #[test]
    fn log_agent_query_lists_only_what_is_set() {
        assert_eq!(log("container=c").agent_query(), "");
        assert_eq!(
            log("follow=1&previous=true&timestamps=true&sinceSeconds=30&tailLines=10&limitBytes=100&container=c")
                .agent_query(),
            "follow=true&previous=true&timestamps=true&sinceSeconds=30&tailLines=10&limitBytes=100"
        );
        assert_eq!(log("sinceTime=2024-01-02T03:04:05.987Z").agent_query(), "sinceTime=2024-01-02T03%3A04%3A05Z");
    }

    #[test]
    fn parses_and_validates_exec_options() {
        let o = ExecOptions::parse(Some(
            "command=sh&command=-c&command=echo+a%26b&container=app&stdin=true&stdout=1&stderr=false&tty=true",
        ));
        assert_eq!(
            o,
            ExecOptions {
                container: Some("app".into()),
                command: vec!["sh".into(), "-c".into(), "echo a&b".into()],
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true,
            }
        );
        o.validate().expect("valid");
        assert_eq!(
            o.agent_query(),
            "command=sh&command=-c&command=echo+a%26b&stdin=true&stdout=true&stderr=false&tty=true"
        );

        let e = ExecOptions::parse(Some("stdout=true")).validate().expect_err("no command");
        assert_eq!((e.code, e.message.as_str()), (400, "you must specify at least 1 command"));
        let e = ExecOptions::parse(Some("command=ls&stdin=false&stdout=0")).validate().expect_err("no stream");
        assert_eq!((e.code, e.message.as_str()), (400, "you must specify at least 1 of stdin, stdout, stderr"));
    }

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn chooses_the_container_as_upstream() {
        let one = pod(json!({"containers": [{"name": "app"}]}));
        assert_eq!(choose_container(&one, None).expect("only"), "app");
        assert_eq!(choose_container(&one, Some("")).expect("empty is unset"), "app");
        assert_eq!(choose_container(&one, Some("app")).expect("named"), "app");

        let with_init = pod(json!({
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "app"}],
            "ephemeralContainers": [{"name": "debugger"}]
        }));
        // One regular container is the default even when init/ephemeral containers exist.
        assert_eq!(choose_container(&with_init, None).expect("only regular"), "app");
        assert_eq!(choose_container(&with_init, Some("setup")).expect("init"), "setup");
        assert_eq!(choose_container(&with_init, Some("debugger")).expect("ephemeral"), "debugger");

        let several = pod(json!({
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "a"}, {"name": "b"}],
            "ephemeralContainers": [{"name": "debugger"}]
        }));
        let cases: &[(&Value, Option<&str>, &str)] = &[
            (&several, None, "a container name must be specified for pod web, choose one of: [setup a b debugger]"),
            (&several, Some("c"), "container c is not valid for pod web"),
            (&one, Some("nope"), "container nope is not valid for pod web"),
            (&pod(json!({"containers": []})), None, "a container name must be specified for pod web"),
            (&pod(json!({})), None, "a container name must be specified for pod web"),
        ];
        for (p, requested, message) in cases {
            let e = choose_container(p, *requested).expect_err(message);
            assert_eq!((e.code, e.reason, e.message.as_str()), (400, "BadRequest", *message));
        }
        // An annotation naming a default container does not change the server's choice.
        let mut annotated = several.clone();
        annotated["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/default-container": "b"});
        assert_eq!(choose_container(&annotated, None).expect_err("several").code, 400);
    }
}
