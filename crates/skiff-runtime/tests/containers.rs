//! Real containers: runc, overlayfs, pod namespaces and CNI. Needs root (CI runs as root).

mod common;

use common::{Env, read_log};
use skiff_runtime::runc::Launch;
use skiff_runtime::{BindMount, ContainerConfig, ContainerStatus};
use std::time::Duration;

fn sh(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig { name: name.into(), command: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() }
}

#[tokio::test]
async fn runs_a_container_that_echoes_and_exits() {
    let env = Env::new(11).await;
    let sb = env.sandbox("echo-pod").await;
    let log = env.log_path("echo");
    let mut cfg = sh("echo", "echo hello world; echo oops >&2; hostname; exit 3");
    cfg.env = vec![("GREETING".into(), "hi".into())];
    assert!(env.runtime.runc().is_sealed(), "runc runs from its sealed copy");
    let c = env.runtime.create(&sb, &cfg, &env.image, &log).await.expect("create");
    assert_eq!(c.status(), ContainerStatus::Created);
    c.start().await.expect("start");
    let exit = tokio::time::timeout(Duration::from_secs(20), c.wait()).await.expect("exits");
    assert_eq!(exit.exit_code, Some(3));
    assert_eq!(exit.reason(), "Error");
    assert!(!exit.oom_killed);
    let lines = read_log(&log);
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert!(lines.contains(&s("stdout", "F", "hello world")), "{lines:?}");
    assert!(lines.contains(&s("stderr", "F", "oops")), "{lines:?}");
    assert!(lines.contains(&s("stdout", "F", "pod-echo-pod")), "hostname from the pod's UTS ns: {lines:?}");
    c.remove().await.expect("remove");
    sb.destroy(&env.network).await.expect("destroy");
    env.teardown().await;
}

#[tokio::test]
async fn launch_run_creates_and_starts_in_one_step() {
    let env = Env::new(36).await;
    let sb = env.sandbox("run-pod").await;
    let log = env.log_path("runner");
    let cfg = sh("runner", "echo started; sleep 0.3; exit 5");
    let meta = serde_json::json!({"attempt": 2});
    let c = env.runtime.launch(Launch::Run, &sb, &cfg, &env.image, &log, meta.clone()).await.expect("run");
    assert!(matches!(c.status(), ContainerStatus::Running { .. }), "{:?}", c.status());
    assert_eq!(c.metadata, meta);
    let exit = tokio::time::timeout(Duration::from_secs(20), c.wait()).await.expect("exits");
    assert_eq!(exit.exit_code, Some(5));
    assert!(read_log(&log).iter().any(|l| l.2 == "started"), "{:?}", read_log(&log));
    c.remove().await.expect("remove");

    // A command that does not exist fails the run and leaves no bundle or runc state behind.
    let bad = ContainerConfig { name: "bad".into(), command: vec!["/no/such/binary".into()], ..Default::default() };
    let err =
        env.runtime.launch(Launch::Run, &sb, &bad, &env.image, &env.log_path("bad"), serde_json::Value::Null).await;
    let err = err.expect_err("no binary");
    assert!(err.to_string().contains("/no/such/binary"), "{err}");
    let left: Vec<_> = std::fs::read_dir(env.tmp.path().join("containers")).expect("dir").collect();
    assert!(left.is_empty(), "bundles left: {left:?}");
    let runc_left: Vec<_> = std::fs::read_dir(env.runtime.runc().root()).expect("runc root").collect();
    assert!(runc_left.is_empty(), "runc state left: {runc_left:?}");
    sb.destroy(&env.network).await.expect("destroy");
    env.teardown().await;
}

#[tokio::test]
async fn sigterm_stops_a_long_running_container() {
    let env = Env::new(12).await;
    let sb = env.sandbox("term-pod").await;
    let log = env.log_path("sleeper");
    let cfg = sh("sleeper", "trap 'echo got TERM; exit 42' TERM; echo ready; while true; do sleep 0.1; done");
    let c = env.runtime.create(&sb, &cfg, &env.image, &log).await.expect("create");
    c.start().await.expect("start");
    assert!(matches!(c.status(), ContainerStatus::Running { .. }));
    wait_for_log(&log, "ready").await;
    let exit = c.stop(Duration::from_secs(10)).await;
    assert_eq!(exit.exit_code, Some(42), "the trap ran: {exit:?}");
    assert!(read_log(&log).iter().any(|l| l.2 == "got TERM"));
    c.remove().await.expect("remove");

    // A process that ignores TERM is killed after the grace period: 128 + SIGKILL.
    let cfg = sh("stubborn", "trap '' TERM; echo ready; while true; do sleep 0.1; done");
    let log = env.log_path("stubborn");
    let c = env.runtime.create(&sb, &cfg, &env.image, &log).await.expect("create");
    c.start().await.expect("start");
    wait_for_log(&log, "ready").await;
    let exit = c.stop(Duration::from_millis(500)).await;
    assert_eq!((exit.exit_code, exit.signal), (Some(137), Some(9)));
    c.remove().await.expect("remove");
    sb.destroy(&env.network).await.expect("destroy");
    env.teardown().await;
}

async fn wait_for_log(log: &std::path::Path, line: &str) {
    for _ in 0..200 {
        if read_log(log).iter().any(|l| l.2 == line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{line:?} never appeared in {}", log.display());
}

#[tokio::test]
async fn empty_dir_is_shared_by_two_containers() {
    let env = Env::new(13).await;
    let sb = env.sandbox("vol-pod").await;
    let vol = sb.dir.join("volumes/cache");
    std::fs::create_dir_all(&vol).expect("emptyDir");
    let mount = BindMount { source: vol.clone(), destination: "/cache".into(), readonly: false };
    let mut writer = sh("writer", "echo shared-data > /cache/f");
    writer.mounts = vec![mount.clone()];
    let mut reader = sh("reader", "cat /cache/f; echo x > /cache/g || echo read-only");
    reader.mounts = vec![BindMount { readonly: true, ..mount }];
    let w = env.runtime.create(&sb, &writer, &env.image, &env.log_path("w")).await.expect("create");
    w.start().await.expect("start");
    assert_eq!(w.wait().await.exit_code, Some(0));
    let r = env.runtime.create(&sb, &reader, &env.image, &env.log_path("r")).await.expect("create");
    r.start().await.expect("start");
    assert_eq!(r.wait().await.exit_code, Some(0));
    let log = read_log(&env.log_path("r"));
    let stdout: Vec<String> = log.iter().filter(|l| l.0 == "stdout").map(|l| l.2.clone()).collect();
    assert_eq!(stdout, vec!["shared-data", "read-only"], "{log:?}");
    assert!(!vol.join("g").exists());
    w.remove().await.expect("remove");
    r.remove().await.expect("remove");
    sb.destroy(&env.network).await.expect("destroy");
    env.teardown().await;
}

#[tokio::test]
async fn memory_limit_oom_is_detected() {
    let env = Env::new(14).await;
    let sb = env.sandbox("oom-pod").await;
    let mut cfg = sh("hog", "echo start; head -c 200m /dev/zero | tail > /dev/null; echo survived");
    cfg.memory_limit_bytes = Some(32 << 20);
    let c = env.runtime.create(&sb, &cfg, &env.image, &env.log_path("hog")).await.expect("create");
    let mem = format!("/sys/fs/cgroup/memory{}/memory.limit_in_bytes", c.cgroups_path);
    if let Ok(limit) = std::fs::read_to_string(&mem) {
        assert_eq!(limit.trim(), (32u64 << 20).to_string());
    }
    c.start().await.expect("start");
    let exit = tokio::time::timeout(Duration::from_secs(30), c.wait()).await.expect("exits");
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.reason(), "OOMKilled");
    c.remove().await.expect("remove");
    assert!(!std::path::Path::new(&mem).exists(), "runc delete removed the cgroup");
    sb.destroy(&env.network).await.expect("destroy");
    assert!(!std::path::Path::new("/sys/fs/cgroup/memory/skiff/oom-pod").exists());
    env.teardown().await;
}

#[tokio::test]
async fn readonly_rootfs_and_user() {
    let env = Env::new(15).await;
    let sb = env.sandbox("ro-pod").await;
    let mut cfg = sh("ro", "id -u; id -g; touch /x 2>/dev/null && echo writable || echo readonly");
    cfg.readonly_rootfs = true;
    cfg.run_as_user = Some(65534);
    let c = env.runtime.create(&sb, &cfg, &env.image, &env.log_path("ro")).await.expect("create");
    c.start().await.expect("start");
    assert_eq!(c.wait().await.exit_code, Some(0));
    let out: Vec<String> = read_log(&env.log_path("ro")).into_iter().map(|l| l.2).collect();
    assert_eq!(out, vec!["65534", "65534", "readonly"]);
    c.remove().await.expect("remove");
    sb.destroy(&env.network).await.expect("destroy");
    env.teardown().await;
}

#[tokio::test]
async fn failed_create_leaves_nothing_behind() {
    let env = Env::new(16).await;
    let sb = env.sandbox("bad-pod").await;
    let cfg = ContainerConfig { name: "bad".into(), command: vec!["/no/such/binary".into()], ..Default::default() };
    // runc 1.1 looks the binary up at create time.
    let err = env.runtime.create(&sb, &cfg, &env.image, &env.log_path("bad")).await.expect_err("no binary");
    assert!(err.to_string().contains("/no/such/binary"), "{err}");
    let left: Vec<_> = std::fs::read_dir(env.tmp.path().join("containers")).expect("dir").collect();
    assert!(left.is_empty(), "bundles left: {left:?}");
    sb.destroy(&env.network).await.expect("destroy");
    env.teardown().await;
}
