//! Streaming exec into real runc containers: pipes, stdin, a terminal, kill on drop, errors.
//! Needs root (CI runs as root).

mod common;

use common::Env;
use skiff_runtime::runc::RuncError;
use skiff_runtime::{Container, ContainerConfig, ExecError, ExecProcess, ExecSpec, Sandbox, exec};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(20);

fn spec(args: &[&str]) -> ExecSpec {
    ExecSpec { args: args.iter().map(|a| a.to_string()).collect(), ..Default::default() }
}

/// A started container that sleeps until removed.
async fn sleeper(env: &Env, sb: &Sandbox, name: &str) -> Container {
    let cfg =
        ContainerConfig { name: name.into(), command: vec!["sleep".into(), "100000".into()], ..Default::default() };
    let c = env.runtime.create(sb, &cfg, &env.image, &env.log_path(name)).await.expect("create");
    c.start().await.expect("start");
    c
}

async fn start(env: &Env, c: &Container, spec: ExecSpec) -> ExecProcess {
    tokio::time::timeout(LIMIT, exec(env.runtime.runc(), &c.id, spec)).await.expect("exec returns").expect("exec")
}

/// stdout and stderr to their ends, then the exit code.
async fn output(mut p: ExecProcess) -> (String, String, i32) {
    let mut stdout = p.stdout.take().expect("stdout");
    let mut stderr = p.stderr.take();
    let read_out = async {
        let mut s = String::new();
        stdout.read_to_string(&mut s).await.expect("read stdout");
        s
    };
    let read_err = async {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            e.read_to_string(&mut s).await.expect("read stderr");
        }
        s
    };
    let (out, err) = tokio::time::timeout(LIMIT, async { tokio::join!(read_out, read_err) }).await.expect("EOF");
    let code = tokio::time::timeout(LIMIT, p.wait()).await.expect("exits").expect("exit code");
    (out, err, code)
}

/// The pids `runc ps` lists in the container.
fn runc_ps(env: &Env, id: &str) -> Vec<i32> {
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(env.runtime.runc().root())
        .args(["ps", "--format", "json", id])
        .output()
        .expect("runc ps");
    assert!(out.status.success(), "runc ps: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("pids")
}

/// Whether `pid` is gone (or a zombie about to be reaped).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_gone(env: &Env, id: &str, pid: i32) {
    for _ in 0..100 {
        if gone(pid) && !runc_ps(env, id).contains(&pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("exec'd process {pid} still runs: {:?}", runc_ps(env, id));
}

#[tokio::test]
async fn pipes_carry_stdout_stderr_and_the_exit_code() {
    let env = Env::new(31).await;
    let sb = env.sandbox("exec-pipes").await;
    let c = sleeper(&env, &sb, "main").await;

    let p = start(&env, &c, spec(&["sh", "-c", "echo out; echo err >&2; exit 3"])).await;
    assert!(p.stdin.is_none(), "no stdin unless asked for");
    assert!(p.terminal().is_none());
    assert_eq!(output(p).await, ("out\n".to_string(), "err\n".to_string(), 3));

    // Extra environment and the working directory; the container's own environment stays.
    let mut s = spec(&["sh", "-c", "echo \"$GREETING $PATH\"; pwd"]);
    s.env = vec!["GREETING=hi".into()];
    s.cwd = Some("/tmp".into());
    let p = start(&env, &c, s).await;
    assert_eq!(output(p).await, ("hi /bin\n/tmp\n".to_string(), String::new(), 0));

    // Death by signal: 128 + N.
    let p = start(&env, &c, spec(&["sh", "-c", "kill -9 $$"])).await;
    assert_eq!(output(p).await.2, 137);

    // Without stdin the process reads EOF at once.
    let p = start(&env, &c, spec(&["cat"])).await;
    assert_eq!(output(p).await, (String::new(), String::new(), 0));

    c.remove().await.expect("remove");
    sb.destroy(&env.network).await.expect("destroy");
    env.teardown().await;
}

#[tokio::test]
async fn stdin_reaches_the_process_and_closing_it_ends_cat() {
    let env = Env::new(32).await;
    let sb = env.sandbox("exec-stdin").await;
    let c = sleeper(&env, &sb, "main").await;

    let mut p = start(&env, &c, ExecSpec { stdin: true, ..spec(&["cat"]) }).await;
    let mut stdin = p.stdin.take().expect("stdin");
    let mut stdout = p.stdout.take().expect("stdout");
    stdin.write_all(b"hello\n").await.expect("write");
    let mut line = [0u8; 6];
    tokio::time::timeout(LIMIT, stdout.read_exact(&mut line)).await.expect("echoed").expect("read");
    assert_eq!(&line, b"hello\n", "cat echoes while stdin is open");
    stdin.write_all(b"world\n").await.expect("write");
    stdin.shutdown().await.expect("close stdin");
    assert!(stdin.write_all(b"late").await.is_err(), "writing after shutdown fails");
    let mut rest = String::new();
    tokio::time::timeout(LIMIT, stdout.read_to_string(&mut rest)).await.expect("EOF").expect("read");
    assert_eq!(rest, "world\n");
    assert_eq!(tokio::time::timeout(LIMIT, p.wait()).await.expect("exits").expect("code"), 0);

    // Dropping stdin closes it too.
    let mut p = start(&env, &c, ExecSpec { stdin: true, ..spec(&["sh", "-c", "cat; echo done"]) }).await;
    let mut stdin = p.stdin.take().expect("stdin");
    stdin.write_all(b"x\n").await.expect("write");
    drop(stdin);
    assert_eq!(output(p).await, ("x\ndone\n".to_string(), String::new(), 0));

    c.remove().await.expect("remove");
    sb.destroy(&env.network).await.expect("destroy");
    env.teardown().await;
}

#[tokio::test]
async fn a_terminal_has_the_size_set_and_a_pts_path() {
    let env = Env::new(33).await;
    let sb = env.sandbox("exec-tty").await;
    let c = sleeper(&env, &sb, "main").await;

    // The shell waits for a line so the resize happens before `stty size` runs.
    let s =
        ExecSpec { tty: true, stdin: true, ..spec(&["sh", "-c", "read go; busybox stty size; busybox tty; exit 5"]) };
    let mut p = start(&env, &c, s).await;
    assert!(p.stderr.is_none(), "a terminal merges stderr into stdout");
    let terminal = p.terminal().expect("terminal");
    terminal.resize(100, 30).expect("resize");
    let mut stdin = p.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").await.expect("write");
    let (out, err, code) = output(p).await;
    assert_eq!((err.as_str(), code), ("", 5));
    // The terminal echoes the input; output lines end in CR LF.
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(lines[..2], ["go", "30 100"], "{out:?}");
    assert!(lines[2].starts_with("/dev/pts/") && lines[2].len() > "/dev/pts/".len(), "{out:?}");
    drop(stdin);

    // Resizing while it runs: the new size is seen (the shell gets SIGWINCH).
    let s = ExecSpec {
        tty: true,
        stdin: true,
        ..spec(&["sh", "-c", "read a; busybox stty size; read b; busybox stty size"])
    };
    let mut p = start(&env, &c, s).await;
    let terminal = p.terminal().expect("terminal");
    let mut stdin = p.stdin.take().expect("stdin");
    terminal.resize(80, 24).expect("resize");
    stdin.write_all(b"1\n").await.expect("write");
    let mut stdout = p.stdout.take().expect("stdout");
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("24 80\r\n") {
        let n = tokio::time::timeout(LIMIT, stdout.read(&mut buf)).await.expect("output").expect("read");
        assert!(n > 0, "EOF too early: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    terminal.resize(132, 43).expect("resize");
    stdin.write_all(b"2\n").await.expect("write");
    let mut rest = String::new();
    tokio::time::timeout(LIMIT, stdout.read_to_string(&mut rest)).await.expect("EOF").expect("read");
    assert!(rest.ends_with("43 132\r\n"), "{rest:?}");
    assert_eq!(tokio::time::timeout(LIMIT, p.wait()).await.expect("exits").expect("code"), 0);

    c.remove().await.expect("remove");
    sb.destroy(&env.network).await.expect("destroy");
    env.teardown().await;
}

#[tokio::test]
async fn dropping_a_session_kills_its_process() {
    let env = Env::new(34).await;
    let sb = env.sandbox("exec-drop").await;
    let c = sleeper(&env, &sb, "main").await;

    for tty in [false, true] {
        let p = start(&env, &c, ExecSpec { tty, ..spec(&["sleep", "1000"]) }).await;
        let pid = p.pid();
        assert!(runc_ps(&env, &c.id).contains(&pid), "tty={tty}: runs in the container");
        let waiter = p.exit_waiter();
        drop(p);
        wait_gone(&env, &c.id, pid).await;
        assert_eq!(tokio::time::timeout(LIMIT, waiter.wait()).await.expect("exit").expect("code"), 137);
    }

    // The streams keep it alive: it dies with the last of them.
    let mut p = start(&env, &c, ExecSpec { stdin: true, ..spec(&["sleep", "1000"]) }).await;
    let pid = p.pid();
    let (stdin, stdout, stderr) = (p.stdin.take(), p.stdout.take(), p.stderr.take());
    drop(p);
    drop(stdin);
    drop(stderr);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!gone(pid), "stdout is still held");
    drop(stdout);
    wait_gone(&env, &c.id, pid).await;

    // The container itself is untouched.
    assert!(runc_ps(&env, &c.id).len() == 1, "only the container's own process is left");
    c.remove().await.expect("remove");
    sb.destroy(&env.network).await.expect("destroy");
    env.teardown().await;
}

#[tokio::test]
async fn exec_failures_are_errors_not_hangs() {
    let env = Env::new(35).await;
    let runc = env.runtime.runc();

    let err = tokio::time::timeout(LIMIT, exec(runc, "no-such-container", spec(&["true"])))
        .await
        .expect("returns")
        .expect_err("no container");
    match &err {
        ExecError::Runc(RuncError::Failed { command: "exec", message, .. }) => {
            assert!(message.contains("does not exist"), "{message}")
        }
        other => panic!("unexpected error {other:?}"),
    }
    let tty = ExecSpec { tty: true, stdin: true, ..spec(&["sh"]) };
    let err = tokio::time::timeout(LIMIT, exec(runc, "no-such-container", tty)).await.expect("returns");
    assert!(matches!(err, Err(ExecError::Runc(RuncError::Failed { .. }))), "{err:?}");

    let sb = env.sandbox("exec-errors").await;
    let c = sleeper(&env, &sb, "main").await;
    let err = tokio::time::timeout(LIMIT, exec(runc, &c.id, spec(&["no-such-binary"])))
        .await
        .expect("returns")
        .expect_err("not found");
    assert!(err.to_string().contains("executable file not found"), "{err}");

    // A container whose process has exited.
    let cfg = ContainerConfig { name: "done".into(), command: vec!["true".into()], ..Default::default() };
    let done = env.runtime.create(&sb, &cfg, &env.image, &env.log_path("done")).await.expect("create");
    done.start().await.expect("start");
    tokio::time::timeout(LIMIT, done.wait()).await.expect("exits");
    let err = tokio::time::timeout(LIMIT, exec(runc, &done.id, spec(&["true"]))).await.expect("returns");
    assert!(matches!(err, Err(ExecError::Runc(RuncError::Failed { .. }))), "{err:?}");

    done.remove().await.expect("remove");
    c.remove().await.expect("remove");
    sb.destroy(&env.network).await.expect("destroy");
    env.teardown().await;
}
