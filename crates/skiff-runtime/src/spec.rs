//! The OCI runtime `config.json` of a container, built from a [`ContainerConfig`] with Kubernetes'
//! semantics: `command`/`args` override the image's entrypoint/cmd, container env overrides image
//! env by name, `runAsUser`/`runAsGroup` override the image `USER`, capabilities start from
//! Docker's default set, limits go to the container's cgroup. The spec is written as the runtime
//! spec's JSON and checked by deserializing it into `oci_spec::runtime::Spec`.

use crate::image::ImageConfig;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Docker's (and containerd's) default capability set for unprivileged containers.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability runc 1.1 knows, in kernel order: what `privileged` and `add: [ALL]` grant.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A container spec that cannot be turned into a runtime config.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Neither the container nor the image says what to run.
    #[error("no command specified: neither the container nor the image has one")]
    NoCommand,
    /// An unknown capability name.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    /// The image `USER` names a user or group the image's /etc/passwd or /etc/group lacks.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// The generated JSON is not a valid runtime spec (a bug in this module).
    #[error("invalid runtime spec: {0}")]
    Invalid(String),
    /// Writing config.json failed.
    #[error("writing {path}: {source}")]
    Write {
        /// config.json's path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A bind mount into the container (an emptyDir, hostPath, configMap directory...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The directory or file on the host.
    pub source: PathBuf,
    /// Where it appears in the container.
    pub destination: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// What the agent asks for one container: the Kubernetes container spec, resolved to values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    /// The container's name in the pod.
    pub name: String,
    /// `command`: replaces the image entrypoint when non-empty.
    pub command: Vec<String>,
    /// `args`: replaces the image cmd when non-empty.
    pub args: Vec<String>,
    /// `env`, in order; later entries and entries here override the image's.
    pub env: Vec<(String, String)>,
    /// `workingDir`; the image's `WorkingDir` (or `/`) when unset.
    pub working_dir: Option<String>,
    /// `securityContext.runAsUser`.
    pub run_as_user: Option<u32>,
    /// `securityContext.runAsGroup`.
    pub run_as_group: Option<u32>,
    /// `securityContext.supplementalGroups` (pod level).
    pub supplemental_groups: Vec<u32>,
    /// `securityContext.readOnlyRootFilesystem`.
    pub readonly_rootfs: bool,
    /// `securityContext.privileged`.
    pub privileged: bool,
    /// `securityContext.allowPrivilegeEscalation: false` sets no_new_privs.
    pub no_new_privileges: bool,
    /// `securityContext.capabilities.add` (`NET_ADMIN` or `CAP_NET_ADMIN`, `ALL`).
    pub capabilities_add: Vec<String>,
    /// `securityContext.capabilities.drop`.
    pub capabilities_drop: Vec<String>,
    /// `resources.limits.memory` in bytes.
    pub memory_limit_bytes: Option<i64>,
    /// `resources.limits.cpu` in millicores (CFS quota).
    pub cpu_limit_millis: Option<i64>,
    /// `resources.requests.cpu` in millicores (CPU shares).
    pub cpu_request_millis: Option<i64>,
    /// Volume mounts.
    pub mounts: Vec<BindMount>,
    /// `securityContext.sysctls` of the pod (name with dots, value), set by the runtime in the
    /// container's namespaces (the pod's, which its containers share).
    pub sysctls: Vec<(String, String)>,
}

/// Where the container lives: the pod's namespaces and files, its root and cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecContext {
    /// The mounted root file system.
    pub rootfs: PathBuf,
    /// The pod's hostname (UTS namespace and `HOSTNAME`).
    pub hostname: String,
    /// The pod's network namespace to join (`None`: a new one).
    pub netns: Option<PathBuf>,
    /// The pod's IPC namespace to join.
    pub ipcns: Option<PathBuf>,
    /// The pod's UTS namespace to join.
    pub utsns: Option<PathBuf>,
    /// The pod's `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`.
    pub etc_files: Vec<(PathBuf, &'static str)>,
    /// The cgroup path, e.g. `/skiff/<pod-uid>/<container-id>`.
    pub cgroups_path: String,
}

/// The process arguments with Kubernetes' rules: `command` replaces the entrypoint (and then the
/// image cmd is dropped), `args` replaces the cmd.
pub fn effective_args(image: &ImageConfig, command: &[String], args: &[String]) -> Vec<String> {
    let (entry, cmd): (&[String], &[String]) = match (command.is_empty(), args.is_empty()) {
        (false, _) => (command, args),
        (true, false) => (&image.entrypoint, args),
        (true, true) => (&image.entrypoint, &image.cmd),
    };
    entry.iter().chain(cmd).cloned().collect()
}

/// The environment: `PATH` default, `HOSTNAME`, the image's, then the container's, each name once
/// at the position it first appeared with the last value given.
pub fn effective_env(image: &ImageConfig, hostname: &str, env: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match out.iter_mut().find(|(n, _)| n == k) {
        Some(slot) => slot.1 = v.to_string(),
        None => out.push((k.to_string(), v.to_string())),
    };
    set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    set("HOSTNAME", hostname);
    for kv in &image.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k, v);
    }
    for (k, v) in env {
        set(k, v);
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// A user and its groups as the process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Additional gids.
    pub additional_gids: Vec<u32>,
}

/// Resolves the image `USER` and the security context against the image's `/etc/passwd` and
/// `/etc/group` texts (empty when the image has none).
pub fn resolve_user(
    image_user: &str,
    config: &ContainerConfig,
    passwd: &str,
    group: &str,
) -> Result<ResolvedUser, SpecError> {
    let users: Vec<Vec<&str>> = passwd.lines().map(|l| l.split(':').collect()).collect();
    let groups: Vec<Vec<&str>> = group.lines().map(|l| l.split(':').collect()).collect();
    let (user_part, group_part) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    let by_uid = |uid: u32| users.iter().find(|f| f.len() > 3 && f[2].parse() == Ok(uid));
    let (mut uid, mut name, mut gid) = (0u32, Some("root".to_string()), 0u32);
    if !user_part.is_empty() {
        if let Ok(n) = user_part.parse::<u32>() {
            uid = n;
            name = by_uid(n).map(|f| f[0].to_string());
            gid = by_uid(n).and_then(|f| f[3].parse().ok()).unwrap_or(0);
        } else {
            let f = users
                .iter()
                .find(|f| f.len() > 3 && f[0] == user_part)
                .ok_or_else(|| SpecError::UnknownUser(user_part.to_string()))?;
            uid = f[2].parse().map_err(|_| SpecError::UnknownUser(user_part.to_string()))?;
            gid = f[3].parse().unwrap_or(0);
            name = Some(user_part.to_string());
        }
    }
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f.len() > 2 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| SpecError::UnknownUser(format!("group {g}")))?,
        };
    }
    if let Some(u) = config.run_as_user {
        uid = u;
        name = by_uid(u).map(|f| f[0].to_string());
        gid = by_uid(u).and_then(|f| f[3].parse().ok()).unwrap_or(0);
    }
    if let Some(g) = config.run_as_group {
        gid = g;
    }
    let mut additional: Vec<u32> = Vec::new();
    if let Some(name) = &name {
        for f in &groups {
            if f.len() > 3
                && f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse::<u32>()
            {
                additional.push(g);
            }
        }
    }
    additional.extend(&config.supplemental_groups);
    additional.retain(|g| *g != gid);
    additional.sort_unstable();
    additional.dedup();
    Ok(ResolvedUser { uid, gid, additional_gids: additional })
}

/// Normalizes a Kubernetes capability name (`NET_ADMIN`, `net_admin`, `CAP_NET_ADMIN`).
fn cap_name(name: &str) -> Result<String, SpecError> {
    let upper = name.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    if ALL_CAPABILITIES.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::UnknownCapability(name.to_string()))
    }
}

/// The capability set: privileged gets all; otherwise Docker's defaults, minus `drop` (`ALL`
/// empties it), plus `add` (`ALL` fills it).
pub fn capabilities(config: &ContainerConfig) -> Result<Vec<String>, SpecError> {
    if config.privileged {
        return Ok(ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect());
    }
    let drop: Vec<String> = config.capabilities_drop.iter().map(|c| cap_name(c)).collect::<Result<_, _>>()?;
    let add: Vec<String> = config.capabilities_add.iter().map(|c| cap_name(c)).collect::<Result<_, _>>()?;
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).filter(|c| !drop.contains(c)).collect()
    };
    if add.iter().any(|c| c == "ALL") {
        return Ok(ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect());
    }
    for c in add {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

/// The runtime spec as JSON (see the module docs).
pub fn build_spec(
    config: &ContainerConfig,
    image: &ImageConfig,
    user: &ResolvedUser,
    ctx: &SpecContext,
) -> Result<Value, SpecError> {
    let args = effective_args(image, &config.command, &config.args);
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let cwd = config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(image.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    let caps = capabilities(config)?;
    let sys_options = if config.privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for (source, destination) in &ctx.etc_files {
        mounts.push(bind_mount(source, destination, false));
    }
    for m in &config.mounts {
        mounts.push(bind_mount(&m.source, &m.destination, m.readonly));
    }
    let ns = |kind: &str, path: &Option<PathBuf>| match path {
        Some(p) => json!({"type": kind, "path": p}),
        None => json!({"type": kind}),
    };
    let namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "mount"}),
        ns("network", &ctx.netns),
        ns("ipc", &ctx.ipcns),
        ns("uts", &ctx.utsns),
    ];
    let mut resources = json!({
        "devices": [{"allow": config.privileged, "access": "rwm"}],
    });
    if let Some(limit) = config.memory_limit_bytes {
        resources["memory"] = json!({"limit": limit});
    }
    let mut cpu = serde_json::Map::new();
    if let Some(m) = config.cpu_limit_millis {
        cpu.insert("quota".into(), json!(m * 100));
        cpu.insert("period".into(), json!(100_000u64));
    }
    if let Some(m) = config.cpu_request_millis.or(config.cpu_limit_millis) {
        cpu.insert("shares".into(), json!((m * 1024 / 1000).max(2) as u64));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": ctx.cgroups_path,
    });
    if !config.sysctls.is_empty() {
        linux["sysctl"] = config.sysctls.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    }
    if !config.privileged {
        linux["maskedPaths"] = json!([
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware"
        ]);
        linux["readonlyPaths"] = json!(["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]);
    }
    let mut user_json = json!({"uid": user.uid, "gid": user.gid});
    if !user.additional_gids.is_empty() {
        user_json["additionalGids"] = json!(user.additional_gids);
    }
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": user_json,
            "args": args,
            "env": effective_env(image, &ctx.hostname, &config.env),
            "cwd": cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
            },
            "noNewPrivileges": config.no_new_privileges,
        },
        "root": {"path": ctx.rootfs, "readonly": config.readonly_rootfs},
        "hostname": ctx.hostname,
        "mounts": mounts,
        "linux": linux,
    });
    // Typed check: what runc gets is a valid runtime spec.
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone()).map_err(|e| SpecError::Invalid(e.to_string()))?;
    Ok(spec)
}

fn bind_mount(source: &Path, destination: &str, readonly: bool) -> Value {
    let mut options = vec!["rbind", "rprivate"];
    if readonly {
        options.push("ro");
    }
    json!({"destination": destination, "type": "bind", "source": source, "options": options})
}

/// Writes `spec` as `<bundle>/config.json` through `oci_spec`'s typed `Spec`.
pub fn write_config(bundle: &Path, spec: &Value) -> Result<PathBuf, SpecError> {
    let typed: oci_spec::runtime::Spec =
        serde_json::from_value(spec.clone()).map_err(|e| SpecError::Invalid(e.to_string()))?;
    let path = bundle.join("config.json");
    typed
        .save(&path)
        .map_err(|e| SpecError::Write { path: path.clone(), source: std::io::Error::other(e.to_string()) })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn args_follow_kubernetes_rules() {
        let image = ImageConfig { entrypoint: s(&["/entry"]), cmd: s(&["--default"]), ..Default::default() };
        let cases: [(&[&str], &[&str], &[&str]); 4] = [
            (&[], &[], &["/entry", "--default"]),
            (&["/bin/sh"], &[], &["/bin/sh"]),
            (&[], &["--x"], &["/entry", "--x"]),
            (&["/bin/sh"], &["-c", "echo"], &["/bin/sh", "-c", "echo"]),
        ];
        for (command, args, want) in cases {
            assert_eq!(effective_args(&image, &s(command), &s(args)), s(want), "{command:?} {args:?}");
        }
    }

    #[test]
    fn env_overrides_by_name() {
        let image = ImageConfig { env: s(&["PATH=/bin", "A=1", "B"]), ..Default::default() };
        let env = vec![("A".to_string(), "2".to_string()), ("C".to_string(), "3".to_string())];
        assert_eq!(effective_env(&image, "pod-a", &env), s(&["PATH=/bin", "HOSTNAME=pod-a", "A=2", "B=", "C=3"]));
    }

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:102:nginx:/:/bin/false\nbob:x:1000:1000::/home/bob:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnginx:x:102:\nwheel:x:10:bob,alice\nbob:x:1000:\n";

    #[test]
    fn resolves_users() {
        let base = ContainerConfig::default();
        let with = |u: Option<u32>, g: Option<u32>, sup: &[u32]| ContainerConfig {
            run_as_user: u,
            run_as_group: g,
            supplemental_groups: sup.to_vec(),
            ..Default::default()
        };
        type Case<'a> = (&'a str, ContainerConfig, (u32, u32, Vec<u32>));
        let cases: Vec<Case> = vec![
            ("", base.clone(), (0, 0, vec![])),
            ("nginx", base.clone(), (101, 102, vec![])),
            ("101", base.clone(), (101, 102, vec![])),
            ("bob", base.clone(), (1000, 1000, vec![10])),
            ("nginx:wheel", base.clone(), (101, 10, vec![])),
            ("4242:4343", base.clone(), (4242, 4343, vec![])),
            ("nginx", with(Some(1000), None, &[]), (1000, 1000, vec![10])),
            ("", with(Some(5), Some(6), &[7, 6]), (5, 6, vec![7])),
        ];
        for (image_user, config, (uid, gid, extra)) in cases {
            let got = resolve_user(image_user, &config, PASSWD, GROUP).expect(image_user);
            assert_eq!(got, ResolvedUser { uid, gid, additional_gids: extra }, "{image_user}");
        }
        assert!(matches!(resolve_user("nobody", &base, PASSWD, GROUP), Err(SpecError::UnknownUser(_))));
    }

    #[test]
    fn capability_sets() {
        let cfg = |add: &[&str], drop: &[&str], privileged: bool| ContainerConfig {
            capabilities_add: s(add),
            capabilities_drop: s(drop),
            privileged,
            ..Default::default()
        };
        assert_eq!(capabilities(&cfg(&[], &[], false)).expect("caps"), s(&DEFAULT_CAPABILITIES));
        assert_eq!(capabilities(&cfg(&["NET_ADMIN"], &["ALL"], false)).expect("caps"), s(&["CAP_NET_ADMIN"]));
        let dropped = capabilities(&cfg(&[], &["net_raw", "CAP_KILL"], false)).expect("caps");
        assert_eq!(dropped.len(), 12);
        assert!(!dropped.contains(&"CAP_NET_RAW".to_string()));
        assert_eq!(capabilities(&cfg(&[], &[], true)).expect("caps").len(), 41);
        assert_eq!(capabilities(&cfg(&["ALL"], &[], false)).expect("caps").len(), 41);
        assert!(matches!(capabilities(&cfg(&["FLY"], &[], false)), Err(SpecError::UnknownCapability(_))));
    }

    fn ctx() -> SpecContext {
        SpecContext {
            rootfs: "/c/rootfs".into(),
            hostname: "web-0".into(),
            netns: Some("/run/skiff/ns/p1-net".into()),
            ipcns: Some("/run/skiff/ns/p1-ipc".into()),
            utsns: None,
            etc_files: vec![("/pods/p1/hosts".into(), "/etc/hosts")],
            cgroups_path: "/skiff/p1/c1".into(),
        }
    }

    #[test]
    fn builds_a_runtime_spec() {
        let config = ContainerConfig {
            name: "app".into(),
            command: s(&["sh", "-c", "echo hi"]),
            memory_limit_bytes: Some(64 << 20),
            cpu_limit_millis: Some(500),
            readonly_rootfs: true,
            mounts: vec![BindMount { source: "/v/data".into(), destination: "/data".into(), readonly: true }],
            sysctls: vec![("kernel.shm_rmid_forced".into(), "1".into())],
            ..Default::default()
        };
        let user = ResolvedUser { uid: 0, gid: 0, additional_gids: vec![] };
        let spec = build_spec(&config, &ImageConfig::default(), &user, &ctx()).expect("spec");
        assert_eq!(spec["process"]["args"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(spec["process"]["cwd"], "/");
        assert_eq!(spec["root"], json!({"path": "/c/rootfs", "readonly": true}));
        assert_eq!(spec["hostname"], "web-0");
        assert_eq!(spec["linux"]["cgroupsPath"], "/skiff/p1/c1");
        assert_eq!(spec["linux"]["sysctl"], json!({"kernel.shm_rmid_forced": "1"}));
        assert_eq!(spec["linux"]["resources"]["memory"], json!({"limit": 67108864}));
        assert_eq!(spec["linux"]["resources"]["cpu"], json!({"quota": 50000, "period": 100000, "shares": 512}));
        assert_eq!(
            spec["linux"]["namespaces"],
            json!([{"type": "pid"}, {"type": "mount"},
                   {"type": "network", "path": "/run/skiff/ns/p1-net"},
                   {"type": "ipc", "path": "/run/skiff/ns/p1-ipc"}, {"type": "uts"}])
        );
        let mounts = spec["mounts"].as_array().expect("mounts");
        assert_eq!(
            mounts[7],
            json!({"destination": "/etc/hosts", "type": "bind", "source": "/pods/p1/hosts", "options": ["rbind", "rprivate"]})
        );
        assert_eq!(mounts[8]["options"], json!(["rbind", "rprivate", "ro"]));
        assert_eq!(mounts[5]["options"], json!(["nosuid", "noexec", "nodev", "ro"]));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_config(dir.path(), &spec).expect("write");
        let back: Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
        assert_eq!(back["process"]["args"], spec["process"]["args"]);
    }

    #[test]
    fn no_command_is_an_error() {
        let user = ResolvedUser { uid: 0, gid: 0, additional_gids: vec![] };
        let got = build_spec(&ContainerConfig::default(), &ImageConfig::default(), &user, &ctx());
        assert!(matches!(got, Err(SpecError::NoCommand)));
    }
}
