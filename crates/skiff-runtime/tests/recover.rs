//! Restart safety: a runtime whose process (here: its async runtime) went away leaves its pods
//! running; a new runtime on the same directories adopts them. Needs root.

mod common;

use common::{Env, read_log};
use skiff_runtime::runc::Launch;
use skiff_runtime::{ContainerConfig, ContainerStatus, Runtime, RuntimeConfig, Sandbox};
use std::path::Path;
use std::time::Duration;

fn sh(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig { name: name.into(), command: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() }
}

fn runtime_config(tmp: &Path) -> RuntimeConfig {
    RuntimeConfig { state_dir: tmp.join("containers"), runc_root: tmp.join("runc"), runc_binary: "runc".into() }
}

/// The numbers of the `line-N` entries of a log.
fn numbers(log: &Path) -> Vec<u32> {
    read_log(log).iter().filter_map(|l| l.2.strip_prefix("line-")?.parse().ok()).collect()
}

/// What the first "agent" started: the talker's and quitter's ids and init pids.
struct Started {
    talker: (String, i32),
    quitter: (String, i32),
    idle: String,
    ip: std::net::IpAddr,
}

/// Runs the first "agent" on its own async runtime and drops it (its log copiers and exit
/// observers die with it, as they would with the agent process).
fn first_agent(env: &Env) -> Started {
    let tmp = env.tmp.path().to_path_buf();
    let (store, network, image) = (env.store.clone(), env.network.clone(), env.image.clone());
    let talker_log = env.log_path("talker");
    let quitter_log = env.log_path("quitter");
    let idle_log = env.log_path("idle");
    env.pods.lock().expect("pods").push("rec-pod".into());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
        let started = rt.block_on(async {
            let runtime = Runtime::new(runtime_config(&tmp), store).expect("runtime");
            let config = skiff_runtime::SandboxConfig {
                pod_uid: "rec-pod".into(),
                pod_name: "rec".into(),
                namespace: "default".into(),
                hostname: "rec".into(),
                ..Default::default()
            };
            let sb = Sandbox::create(&config, &tmp.join("pods"), &network).await.expect("sandbox");
            let talker =
                sh("talker", "trap 'exit 42' TERM; i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.1; done");
            let meta = serde_json::json!({"attempt": 3});
            // The talker is started as the agent starts containers (`runc run --detach`), the
            // quitter in two steps (create, start).
            let t = runtime.launch(Launch::Run, &sb, &talker, &image, &talker_log, meta).await.expect("run talker");
            let q = runtime.create(&sb, &sh("quitter", "echo bye; sleep 0.5; exit 7"), &image, &quitter_log).await;
            let q = q.expect("create quitter");
            q.start().await.expect("start quitter");
            let idle = runtime.create(&sb, &sh("idle", "true"), &image, &idle_log).await.expect("create idle");
            for _ in 0..100 {
                if numbers(&talker_log).len() >= 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let pid = |id: String| {
                let runc = runtime.runc().clone();
                async move {
                    let pid = runc.state(&id).await.expect("runc state").pid;
                    (id, pid)
                }
            };
            Started {
                talker: pid(t.id.clone()).await,
                quitter: pid(q.id.clone()).await,
                idle: idle.id.clone(),
                ip: sb.ip,
            }
        });
        drop(rt);
        started
    })
    .join()
    .expect("first agent")
}

#[tokio::test]
async fn a_new_runtime_adopts_running_containers_and_their_logs() {
    let env = Env::new(23).await;
    let started = first_agent(&env);
    let log = env.log_path("talker");
    let before = numbers(&log);
    assert!(before.len() >= 3, "{before:?}");
    // The "agent" is away: the talker keeps writing into its FIFO, the quitter exits.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let sandboxes = Sandbox::recover(&env.tmp.path().join("pods"), &env.network).await;
    assert_eq!(sandboxes.len(), 1);
    let sb = &sandboxes[0];
    assert_eq!((sb.pod_uid.as_str(), sb.pod_name.as_str(), sb.namespace.as_str()), ("rec-pod", "rec", "default"));
    assert_eq!(sb.ip, started.ip);
    assert!(sb.is_intact());

    let mut containers = env.runtime.recover().await;
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["quitter", "talker"], "the never-started container is removed");
    let runc = env.runtime.runc();
    assert!(runc.state(&started.idle).await.is_err(), "runc forgot the never-started container");
    assert!(!env.tmp.path().join("containers").join(&started.idle).exists());

    let (quitter, talker) = (&containers[0], &containers[1]);
    assert_eq!(talker.id, started.talker.0);
    assert_eq!(talker.metadata, serde_json::json!({"attempt": 3}));
    assert!(matches!(talker.status(), ContainerStatus::Running { .. }), "{:?}", talker.status());
    assert_eq!(runc.state(&talker.id).await.expect("state").pid, started.talker.1, "same process, not restarted");

    // Lines written while nobody read were buffered in the FIFO; new ones keep coming.
    let last_before = *before.last().expect("lines");
    let mut after = Vec::new();
    for _ in 0..100 {
        after = numbers(&log);
        if after.last().is_some_and(|n| *n > last_before + 20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let want: Vec<u32> = (0..=*after.last().expect("lines")).collect();
    assert_eq!(after, want, "every line once, in order, across the restart");

    // The quitter exited while nobody watched: its status is unknown.
    let exit = tokio::time::timeout(Duration::from_secs(5), quitter.wait()).await.expect("quitter exited");
    assert_eq!((exit.exit_code, exit.code(), exit.reason()), (None, 255, "Unknown"));
    assert!(read_log(&env.log_path("quitter")).iter().any(|l| l.2 == "bye"));

    // The adopted talker is stopped through runc and its exit seen through its pidfd.
    let exit =
        tokio::time::timeout(Duration::from_secs(15), talker.stop(Duration::from_secs(5))).await.expect("talker stops");
    assert_eq!((exit.code(), exit.reason()), (255, "Unknown"));

    // Reap the two exited processes (this test process was their subreaper all along).
    for pid in [started.talker.1, started.quitter.1] {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    }
    for c in containers {
        c.remove().await.expect("remove");
    }
    sandboxes[0].destroy(&env.network).await.expect("destroy");
    assert!(!env.tmp.path().join("pods/rec-pod").exists());
    env.teardown().await;
}
