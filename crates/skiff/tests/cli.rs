//! End-to-end: `skiff`'s kubectl-like verbs against `skiff server`, compared with the real kubectl
//! v1.35 on the same server (same output, same messages, same exit codes).

mod common;

use std::process::{Command, Output, Stdio};

use common::Server;

/// Runs `skiff ARGS` with the server's kubeconfig.
fn skiff(s: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .env("KUBECONFIG", &s.kubeconfig)
        .env("SKIFF_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .expect("run skiff")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Ages (`3s`, `2m5s`) can tick between the two runs: compare them as `AGE`, and runs of spaces
/// (whose width may follow an age) as one space.
fn normalise(out: &str) -> String {
    out.lines()
        .map(|line| {
            line.split(' ')
                .filter(|w| !w.is_empty())
                .map(|w| {
                    let is_age = w.ends_with('s')
                        && w.trim_end_matches('s').chars().all(|c| c.is_ascii_digit() || c == 'm' || c == 'h')
                        && w.len() > 1;
                    if is_age { "AGE" } else { w }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that skiff and kubectl print the same stdout and stderr and exit alike.
fn same_as_kubectl(s: &Server, args: &[&str]) -> String {
    let ours = skiff(s, args);
    let theirs = s.kubectl(args);
    assert_eq!(normalise(&text(&ours.stdout)), normalise(&text(&theirs.stdout)), "stdout of {args:?}");
    assert_eq!(text(&ours.stderr), text(&theirs.stderr), "stderr of {args:?}");
    assert_eq!(ours.status.code(), theirs.status.code(), "exit code of {args:?}");
    text(&ours.stdout)
}

fn skiff_ok(s: &Server, args: &[&str]) -> String {
    let out = skiff(s, args);
    assert!(out.status.success(), "skiff {args:?} failed: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn create_deployment_dry_run_prints_kubectls_manifest() {
    let s = Server::start();
    for args in [
        &["create", "deployment", "web", "--image=nginx:1.25", "--port=80", "--dry-run=client", "-o", "yaml"][..],
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=3",
            "--dry-run=client",
            "-o",
            "yaml",
            "--",
            "sleep",
            "10",
        ],
        &["run", "p", "--image=nginx", "--dry-run=client", "-o", "yaml", "--", "sh", "-c", "echo hi"],
        &["run", "p", "--image=nginx", "--restart=Never", "--dry-run=client"],
    ] {
        same_as_kubectl(&s, args);
    }
}

#[test]
fn workflow_messages_and_tables_match_kubectl() {
    let s = Server::start();
    assert_eq!(
        skiff_ok(&s, &["create", "deployment", "web", "--image=nginx", "--replicas=2"]),
        "deployment.apps/web created\n"
    );
    assert_eq!(skiff_ok(&s, &["run", "p", "--image=nginx"]), "pod/p created\n");
    let dup = skiff(&s, &["create", "deployment", "web", "--image=nginx"]);
    assert_eq!(dup.status.code(), Some(1));
    assert_eq!(text(&dup.stderr), "error: failed to create deployment: deployments.apps \"web\" already exists\n");
    // Let the controllers settle (no node agent: pods stay Pending) so both CLIs see one state.
    let settled = std::time::Instant::now();
    while skiff_ok(&s, &["get", "deploy", "web", "-o", "jsonpath={.status.updatedReplicas}"]) != "2" {
        assert!(settled.elapsed() < std::time::Duration::from_secs(30), "the deployment controller never caught up");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for args in [
        &["get", "deploy"][..],
        &["get", "deployments", "-o", "wide"],
        &["get", "deploy", "web", "-o", "name"],
        &["get", "deploy", "web", "-o", "yaml"],
        &["get", "deploy", "-o", "json"],
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.labels}"],
        &["get", "po", "-l", "run=p", "-A"],
        &["get", "deploy", "missing"],
        &["get", "deploy", "-n", "empty-ns"],
        &["get", "ns"],
        &["describe", "deploy", "web"],
    ] {
        same_as_kubectl(&s, args);
    }
    assert_eq!(skiff_ok(&s, &["scale", "deploy/web", "--replicas=3"]), "deployment.apps/web scaled\n");
    assert_eq!(
        skiff_ok(&s, &["set", "image", "deploy/web", "nginx=nginx:1.27"]),
        "deployment.apps/web image updated\n"
    );
    assert_eq!(skiff_ok(&s, &["rollout", "pause", "deploy/web"]), "deployment.apps/web paused\n");
    same_as_kubectl(&s, &["rollout", "pause", "deploy/web"]);
    same_as_kubectl(&s, &["rollout", "restart", "deploy/web"]);
    assert_eq!(skiff_ok(&s, &["rollout", "resume", "deploy/web"]), "deployment.apps/web resumed\n");
    same_as_kubectl(&s, &["rollout", "resume", "deploy/web"]);
    same_as_kubectl(&s, &["rollout", "history", "deploy/web"]);
    same_as_kubectl(&s, &["delete", "deploy", "missing"]);
    assert_eq!(skiff_ok(&s, &["delete", "deploy", "web"]), "deployment.apps \"web\" deleted from default namespace\n");
}

/// kubectl's global flags (`-n`, `--kubeconfig`) go before the verb as well as after it, with the
/// same outcome as kubectl for the same words; the last occurrence wins.
#[test]
fn global_flags_before_the_verb_as_kubectl() {
    let s = Server::start();
    assert_eq!(skiff_ok(&s, &["create", "namespace", "team"]), "namespace/team created\n");
    assert_eq!(
        skiff_ok(&s, &["-n", "team", "create", "deployment", "web", "--image=nginx"]),
        "deployment.apps/web created\n"
    );
    let kubeconfig = s.kubeconfig.display().to_string();
    for args in [
        &["-n", "team", "get", "deployments", "-o", "name"][..],
        &["get", "deployments", "-n", "team", "-o", "name"],
        &["--namespace=team", "get", "deploy", "web", "-o", "jsonpath={.metadata.namespace}"],
        &["--kubeconfig", &kubeconfig, "-n", "team", "get", "deploy", "-o", "name"],
        &["-n", "team", "get", "deploy", "-n", "default"],
        &["-n", "default", "get", "deploy", "-n", "team", "-o", "name"],
        &["-n", "team", "rollout", "history", "deploy/web"],
        &["-n", "team", "get", "deploy", "missing"],
    ] {
        same_as_kubectl(&s, args);
    }
    assert_eq!(skiff_ok(&s, &["-n", "team", "get", "deploy", "-o", "name"]), "deployment.apps/web\n");
    // A kubeconfig given before the verb is the one used.
    let out = skiff(&s, &["--kubeconfig", "/nonexistent/kubeconfig", "get", "pods"]);
    assert!(!out.status.success(), "{out:?}");
    // Per-command flags stay after the verb; the daemons take none of the verbs' flags.
    let out = skiff(&s, &["-A", "get", "pods"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("unexpected argument '-A'"), "{}", text(&out.stderr));
    let out = skiff(&s, &["-n", "x", "server", "--port", "0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("the argument '--namespace' before 'server' applies to the kubectl-like verbs only"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        skiff_ok(&s, &["delete", "deploy", "web", "-n", "team"]),
        "deployment.apps \"web\" deleted from team namespace\n"
    );
}

#[test]
fn apply_reports_created_unchanged_configured() {
    let s = Server::start();
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: \"1\"\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n";
    let file = s.write_file("m.yaml", manifest);
    let path = file.display().to_string();
    assert_eq!(skiff_ok(&s, &["apply", "-f", &path]), "configmap/c created\nnamespace/team created\n");
    assert_eq!(skiff_ok(&s, &["apply", "-f", &path]), "configmap/c unchanged\nnamespace/team unchanged\n");
    std::fs::write(&file, manifest.replace("a: \"1\"", "a: \"2\"")).expect("rewrite");
    assert_eq!(skiff_ok(&s, &["apply", "-f", &path]), "configmap/c configured\nnamespace/team unchanged\n");
}

#[test]
fn common_mistakes_get_clear_errors() {
    let s = Server::start();
    let typo = skiff(&s, &["get", "deploymnt"]);
    assert_eq!(typo.status.code(), Some(1));
    assert_eq!(
        text(&typo.stderr),
        "error: the server doesn't have a resource type \"deploymnt\"\nDid you mean \"deployment\"?\n"
    );
    let missing = skiff(&s, &["get", "po", "--kubeconfig", "/nonexistent/kubeconfig.yaml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("Is the server running"), "{}", text(&missing.stderr));
}

// ------------------------------------------------------------------------------------------------
// get -w, edit, rollout status (live view and plain lines), clear errors.

/// A long-running `skiff` or kubectl whose output is collected in the background; killed on drop.
struct Running {
    child: std::process::Child,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for (pipe, into) in [
            (Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>, stdout.clone()),
            (Box::new(child.stderr.take().expect("stderr")), stderr.clone()),
        ] {
            let mut pipe = pipe;
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    into.lock().expect("lock").push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Running { child, stdout, stderr }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().expect("lock").clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let out = self.stdout();
            if pred(&out) {
                return out;
            }
            assert!(std::time::Instant::now() < deadline, "no {what}:\n{out}\n--- stderr ---\n{}", self.stderr());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit (at most `secs`); returns its exit code.
    fn exit_code(&mut self, secs: u64) -> Option<i32> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads drain the pipes.
                std::thread::sleep(std::time::Duration::from_millis(200));
                return status.code();
            }
            assert!(std::time::Instant::now() < deadline, "still running:\n{}\n{}", self.stdout(), self.stderr());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use std::io::Read;

fn skiff_command(s: &Server, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args(args).env("KUBECONFIG", &s.kubeconfig).env("SKIFF_LOG", "off");
    cmd
}

/// Replaces AGE cells (`5s`, `2m5s`) by `AGE`, keeping the spacing (AGE is the last column of the
/// tables compared here, so its width pads nothing).
fn ages(out: &str) -> String {
    out.lines()
        .map(|line| {
            let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
            if let Some(last) = words.last_mut() {
                let age = last.len() > 1
                    && last.ends_with(['s', 'm', 'h'])
                    && last.chars().all(|c| c.is_ascii_digit() || "smhd".contains(c));
                if age {
                    *last = "AGE".into();
                }
            }
            words.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn get_watch_appends_rows_as_kubectl_does() {
    let s = Server::start();
    skiff_ok(&s, &["create", "deployment", "web", "--image=nginx", "--replicas=2"]);
    wait_until("the controllers to settle", || {
        skiff_ok(&s, &["get", "deploy", "web", "-o", "jsonpath={.status.updatedReplicas}"]) == "2"
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let ours = Running::start(skiff_command(&s, &["get", "deploy", "web", "-w"]));
    let theirs = Running::start(s.kubectl_command(&["get", "deploy", "web", "-w"]));
    // An empty namespace: nothing at first (not even "No resources found"), then the header with
    // the first row.
    skiff_ok(&s, &["create", "namespace", "watched"]);
    let ours_empty = Running::start(skiff_command(&s, &["get", "deploy", "-n", "watched", "-w"]));
    let theirs_empty = Running::start(s.kubectl_command(&["get", "deploy", "-n", "watched", "-w"]));
    for r in [&ours, &theirs] {
        r.wait_for("the initial table", |o| o.lines().count() == 2);
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    for r in [&ours_empty, &theirs_empty] {
        assert_eq!((r.stdout(), r.stderr()), (String::new(), String::new()));
    }
    assert_eq!(skiff_ok(&s, &["scale", "deploy/web", "--replicas=3"]), "deployment.apps/web scaled\n");
    for r in [&ours, &theirs] {
        r.wait_for("the scaled rows", |o| o.lines().last().is_some_and(|l| l.starts_with("web    0/3     3")));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (a, b) = (ours.stdout(), theirs.stdout());
    assert_eq!(ages(&a), ages(&b), "skiff:\n{a}\nkubectl:\n{b}");
    assert!(a.lines().count() >= 3, "rows were appended:\n{a}");
    assert!(a.starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE\nweb    0/2     2            0  "), "{a}");

    skiff_ok(&s, &["create", "deployment", "a-longer-name", "--image=nginx", "-n", "watched"]);
    for r in [&ours_empty, &theirs_empty] {
        r.wait_for("the new deployment", |o| o.lines().filter(|l| l.starts_with("a-longer-name")).count() >= 2);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (a, b) = (ours_empty.stdout(), theirs_empty.stdout());
    assert_eq!(ages(&a), ages(&b), "skiff:\n{a}\nkubectl:\n{b}");
    assert!(a.starts_with("NAME            READY   UP-TO-DATE   AVAILABLE   AGE\na-longer-name   0/1 "), "{a}");
}

/// Writes an executable editor script under the server's home.
fn editor(s: &Server, name: &str, body: &str) -> String {
    let path = s.write_file(name, &format!("#!/bin/sh\n{body}\n"));
    let mut perms = std::fs::metadata(&path).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).expect("chmod");
    path.display().to_string()
}

/// `skiff edit` and `kubectl edit` with the same `$EDITOR` (temporary file names masked).
/// Both keep a copy of a failed edit in `$TMPDIR`: a directory of the test's own, removed after.
fn edit_both(s: &Server, editor: &str, args: &[&str]) -> (Output, Output) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ours = skiff_command(s, args)
        .env("EDITOR", editor)
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .output()
        .expect("skiff edit");
    let dir = tmp.path().display().to_string();
    let theirs = s.kubectl_with(args, None, &[("EDITOR", editor), ("TMPDIR", &dir)]);
    (ours, theirs)
}

fn masked(out: &[u8]) -> String {
    text(out)
        .split('"')
        .map(|part| if part.starts_with("/tmp/") && part.ends_with(".yaml") { "TMPFILE" } else { part })
        .collect::<Vec<_>>()
        .join("\"")
}

fn assert_same_edit(s: &Server, editor: &str, args: &[&str]) -> String {
    let (ours, theirs) = edit_both(s, editor, args);
    assert_eq!(text(&ours.stdout), text(&theirs.stdout), "stdout with {editor}");
    assert_eq!(masked(&ours.stderr), masked(&theirs.stderr), "stderr with {editor}");
    assert_eq!(ours.status.code(), theirs.status.code(), "exit code with {editor}");
    masked(&ours.stderr)
}

#[test]
fn edit_with_an_editor_matches_kubectl() {
    let s = Server::start();
    skiff_ok(&s, &["create", "deployment", "web", "--image=nginx", "--replicas=2"]);
    let replicas = || skiff_ok(&s, &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]);
    let bump = editor(
        &s,
        "bump.sh",
        // spec.replicas is the first `  replicas:` line (status has one too).
        r#"n=$(sed -n 's/^  replicas: //p' "$1" | head -1); sed -i "0,/^  replicas: $n$/s//  replicas: $((n+1))/" "$1""#,
    );
    for want in ["3", "4"] {
        let ours = skiff_command(&s, &["edit", "deploy", "web"]).env("EDITOR", &bump).output().expect("skiff edit");
        assert_eq!((text(&ours.stdout), text(&ours.stderr)), ("deployment.apps/web edited\n".into(), String::new()));
        assert_eq!(replicas(), want);
    }
    let theirs = s.kubectl_with(&["edit", "deploy", "web"], None, &[("EDITOR", bump.as_str())]);
    assert_eq!(text(&theirs.stdout), "deployment.apps/web edited\n");
    assert_eq!(replicas(), "5");

    // Nothing changed, the editor failed, the object renamed: the same messages and exit codes.
    let noop = editor(&s, "noop.sh", "true");
    assert_eq!(assert_same_edit(&s, &noop, &["edit", "deploy", "web"]), "Edit cancelled, no changes made.\n");
    let broken = editor(&s, "broken.sh", "exit 1");
    assert_same_edit(&s, &broken, &["edit", "deployment/web"]);
    let rename = editor(&s, "rename.sh", r#"sed -i 's/^  name: web$/  name: web2/' "$1""#);
    let err = assert_same_edit(&s, &rename, &["edit", "deploy", "web"]);
    assert!(err.ends_with("error: At least one of apiVersion, kind and name was changed\n"), "{err}");

    // A save the server refuses reopens the editor with the reasons on top; saving it again
    // unchanged gives up and keeps the file.
    let seen = s.home().join("seen");
    std::fs::create_dir_all(&seen).expect("mkdir");
    let invalid = editor(
        &s,
        "invalid.sh",
        &format!(r#"cp "$1" {}/$(date +%s%N).yaml; sed -i 's/^  replicas: .*/  replicas: -1/' "$1""#, seen.display()),
    );
    let err = assert_same_edit(&s, &invalid, &["edit", "deploy", "web"]);
    assert_eq!(
        err,
        "error: deployments.apps \"web\" is invalid\nA copy of your changes has been stored to \"TMPFILE\"\nerror: Edit cancelled, no valid changes were saved.\n"
    );
    let mut rounds: Vec<_> = std::fs::read_dir(&seen).expect("ls").flatten().map(|e| e.path()).collect();
    rounds.sort();
    assert_eq!(rounds.len(), 4, "each tool opened the editor twice: {rounds:?}");
    let (first, second) =
        (std::fs::read_to_string(&rounds[0]).expect("read"), std::fs::read_to_string(&rounds[1]).expect("read"));
    let (k1, k2) =
        (std::fs::read_to_string(&rounds[2]).expect("read"), std::fs::read_to_string(&rounds[3]).expect("read"));
    assert!(first.starts_with("# Please edit the object below.") && !first.contains("was not valid"), "{first}");
    let reason = "# deployments.apps \"web\" was not valid:\n# * spec.replicas: Invalid value: -1: must be greater than or equal to 0\n#\n";
    assert!(second.contains(reason), "{second}");
    assert!(k2.contains(reason), "kubectl's second round:\n{k2}");
    assert_eq!(first.lines().take(4).collect::<Vec<_>>(), k1.lines().take(4).collect::<Vec<_>>(), "the same header");
    assert_eq!(replicas(), "5", "nothing was saved");

    // The edit is a patch of what changed: a write by someone else while the editor is open (here
    // the editor itself scales the Deployment first) does not make it conflict, and is kept.
    let concurrent = editor(
        &s,
        "concurrent.sh",
        &format!(
            r#"KUBECONFIG={} {} scale deploy/web --replicas=7 >/dev/null; sed -i 's/image: nginx$/image: nginx:1.27/' "$1""#,
            s.kubeconfig.display(),
            env!("CARGO_BIN_EXE_skiff")
        ),
    );
    let ours = skiff_command(&s, &["edit", "deploy", "web"]).env("EDITOR", &concurrent).output().expect("skiff edit");
    assert_eq!(text(&ours.stdout), "deployment.apps/web edited\n", "{}", text(&ours.stderr));
    assert_eq!(replicas(), "7");
    assert_eq!(
        skiff_ok(&s, &["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]),
        "nginx:1.27"
    );
}

#[test]
fn clear_errors_for_common_mistakes() {
    let s = Server::start();
    skiff_ok(&s, &["create", "deployment", "web", "--image=nginx"]);
    // A typo in a resource type: kubectl's line, then the nearest type.
    let typo = skiff(&s, &["get", "deploymnets"]);
    let kubectl = s.kubectl(&["get", "deploymnets"]);
    assert_eq!(typo.status.code(), Some(1));
    assert_eq!(kubectl.status.code(), Some(1));
    assert_eq!(text(&kubectl.stderr), "error: the server doesn't have a resource type \"deploymnets\"\n");
    assert_eq!(text(&typo.stderr), format!("{}Did you mean \"deployments\"?\n", text(&kubectl.stderr)));
    assert_eq!(text(&typo.stdout), "");
    // A name that does not exist: kubectl's NotFound; a near miss also names the nearest object.
    same_as_kubectl(&s, &["get", "deploy", "nothing-like-it"]);
    same_as_kubectl(&s, &["describe", "deploy", "nothing-like-it"]);
    same_as_kubectl(&s, &["scale", "deploy/nothing-like-it", "--replicas=2"]);
    same_as_kubectl(&s, &["logs", "nothing-like-it"]);
    for (args, kubectl_line) in [
        (&["get", "deploy", "wbe"][..], "Error from server (NotFound): deployments.apps \"wbe\" not found\n"),
        (&["rollout", "status", "deploy/wbe"], "Error from server (NotFound): deployments.apps \"wbe\" not found\n"),
        (
            &["scale", "deploy", "wbe", "--replicas=2"],
            "Error from server (NotFound): deployments.apps \"wbe\" not found\n",
        ),
        (&["delete", "deploy", "wbe"], "Error from server (NotFound): deployments.apps \"wbe\" not found\n"),
    ] {
        let ours = skiff(&s, args);
        let theirs = s.kubectl(args);
        assert_eq!(text(&theirs.stderr), kubectl_line, "kubectl {args:?}");
        assert_eq!(text(&ours.stderr), format!("{kubectl_line}Did you mean \"web\"?\n"), "skiff {args:?}");
        assert_eq!((ours.status.code(), theirs.status.code()), (Some(1), Some(1)), "{args:?}");
    }
    // A kubeconfig path that does not exist, by flag or by $KUBECONFIG.
    let missing = "/nonexistent/kubeconfig.yaml";
    for out in [
        skiff(&s, &["get", "po", "--kubeconfig", missing]),
        Command::new(env!("CARGO_BIN_EXE_skiff")).args(["get", "po"]).env("KUBECONFIG", missing).output().expect("run"),
    ] {
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr),
            format!(
                "error: cannot read the kubeconfig {missing}: the file does not exist. Is the server running (`skiff server`)? Otherwise point --kubeconfig or $KUBECONFIG at the kubeconfig.yaml in the server's data directory\n"
            )
        );
    }
    // No server running: kubectl's connection-refused line, then which kubeconfig pointed there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let config = std::fs::read_to_string(&s.kubeconfig).expect("read kubeconfig");
    let dead = s.write_file("dead.yaml", &config.replace(&s.addr.port().to_string(), &port.to_string()));
    let dead = dead.display().to_string();
    for args in [&["get", "po"][..], &["logs", "p"], &["rollout", "status", "deploy/web"], &["version"]] {
        let mut all = args.to_vec();
        all.extend(["--kubeconfig", dead.as_str()]);
        let out = skiff(&s, &all);
        assert_eq!(out.status.code(), Some(1), "{all:?}");
        assert_eq!(
            text(&out.stderr),
            format!(
                "The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?\n(the kubeconfig {dead} points at 127.0.0.1:{port}; is `skiff server` running?)\n"
            ),
            "{all:?}"
        );
        let theirs = s.kubectl(&all);
        assert!(
            text(&theirs.stderr).ends_with(&format!(
                "The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?\n"
            )),
            "kubectl {all:?}: {}",
            text(&theirs.stderr)
        );
    }
}

/// `skiff agent --simulate N`: nodes that move pods through their lifecycle without running
/// anything (`skiff.dev/simulate: never-ready|fail|complete` picks a behaviour). Killed on drop.
struct SimulatedNodes(std::process::Child);

impl SimulatedNodes {
    fn start(s: &Server, count: usize) -> SimulatedNodes {
        let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["agent", "--simulate", &count.to_string(), "--node-name", "sim", "--ready-delay", "100"])
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the node simulator");
        wait_until("the simulated nodes to be Ready", || {
            let out = skiff_ok(
                s,
                &["get", "nodes", "-o", "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}"],
            );
            out.split_whitespace().filter(|s| *s == "True").count() == count
        });
        SimulatedNodes(child)
    }
}

impl Drop for SimulatedNodes {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn jsonpath(s: &Server, what: &str, path: &str) -> String {
    skiff_ok(s, &["get", what, "-o", &format!("jsonpath={path}")])
}

#[test]
fn rollout_status_says_why_a_rollout_is_stuck() {
    let s = Server::start();
    let _nodes = SimulatedNodes::start(&s, 2);
    skiff_ok(&s, &["create", "deployment", "web", "--image=nginx", "--replicas=3"]);
    let done = skiff_ok(&s, &["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert!(done.ends_with("deployment \"web\" successfully rolled out\n"), "{done}");
    assert_eq!(
        same_as_kubectl(&s, &["rollout", "status", "deploy/web"]),
        "deployment \"web\" successfully rolled out\n"
    );
    // Field managers named as upstream's: the ReplicaSet controller (kube-controller-manager)
    // created each pod, the (simulated) kubelet wrote its status.
    let pods = s.kubectl_json(&["get", "pods", "--show-managed-fields"]);
    let items = pods["items"].as_array().expect("a pod list");
    assert_eq!(items.len(), 3);
    for pod in items {
        let entries: Vec<(&str, &str)> = pod["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| (e["manager"].as_str().unwrap_or(""), e["subresource"].as_str().unwrap_or("")))
            .collect();
        assert!(entries.contains(&("kube-controller-manager", "")), "{entries:?}");
        assert!(entries.contains(&("kubelet", "status")), "{entries:?}");
    }

    // New pods that never become ready, with a short progress deadline.
    let patch = r#"{"spec":{"progressDeadlineSeconds":6,"template":{"metadata":{"annotations":{"skiff.dev/simulate":"never-ready"}},
        "spec":{"containers":[{"name":"nginx","image":"nginx:2","readinessProbe":{"exec":{"command":["cat","/tmp/ready"]}}}]}}}}"#;
    s.kubectl_ok(&["patch", "deploy", "web", "-p", patch]);
    wait_until("the new ReplicaSet's first pod", || {
        jsonpath(&s, "deploy/web", "{.metadata.generation} {.status.observedGeneration} {.status.updatedReplicas}")
            .split(' ')
            .collect::<Vec<_>>()
            .as_slice()
            .windows(2)
            .next()
            .is_some_and(|w| w[0] == w[1])
            && jsonpath(&s, "deploy/web", "{.status.updatedReplicas}") == "1"
    });
    // stdout is a pipe: kubectl's plain lines, and kubectl's error when the deadline passes.
    let mut ours = Running::start(skiff_command(&s, &["rollout", "status", "deploy/web", "--timeout=60s"]));
    let mut theirs = Running::start(s.kubectl_command(&["rollout", "status", "deploy/web", "--timeout=60s"]));
    assert_eq!(ours.exit_code(60), Some(1));
    assert_eq!(theirs.exit_code(60), Some(1));
    let waiting = "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n";
    assert_eq!(theirs.stdout(), waiting);
    assert_eq!(ours.stdout(), waiting);
    let failed = "error: deployment \"web\" exceeded its progress deadline\n";
    assert_eq!(theirs.stderr(), failed);
    let why = ours.stderr();
    assert!(why.ends_with(failed), "{why}");
    let pods: serde_json::Value =
        serde_json::from_str(&skiff_ok(&s, &["get", "pods", "-l", "app=web", "-o", "json"])).expect("pods");
    let new_pods: Vec<&str> = pods["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["metadata"]["annotations"]["skiff.dev/simulate"] == "never-ready")
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    let [new_pod] = new_pods[..] else { panic!("one new pod: {new_pods:?}") };
    assert!(
        why.contains(&format!(
            "pod {new_pod} container nginx: running but not ready: readiness probe exec [cat /tmp/ready] has not passed\n"
        )),
        "{why}"
    );
    assert!(why.contains("progress deadline exceeded: no progress for more than 6s, the rollout is halted\n"), "{why}");

    // The live view (forced here; by default on a terminal): bars, the old ReplicaSet, the reasons.
    let view = skiff(&s, &["rollout", "status", "deploy/web", "--progress=true"]);
    assert_eq!(view.status.code(), Some(1));
    assert_eq!(text(&view.stderr), failed);
    let shown = text(&view.stdout);
    for line in [
        "updated    [######..............] 1/3\n",
        "ready      [####################] 3/3\n",
        "available  [####################] 3/3\n",
        "why it is not done yet:\n",
        "  progress deadline exceeded: no progress for more than 6s, the rollout is halted\n",
        "deployment \"web\" exceeded its progress deadline\n",
    ] {
        assert!(shown.contains(line), "{line:?} in:\n{shown}");
    }
    assert!(shown.contains(" 3 draining\n"), "the old ReplicaSet still has its 3 pods:\n{shown}");
    // On a terminal (a pty from `script`) the view is the default.
    let line =
        format!("{} rollout status deploy/web --kubeconfig {}", env!("CARGO_BIN_EXE_skiff"), s.kubeconfig.display());
    let tty = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let shown = text(&tty.stdout);
    assert!(shown.contains("updated    [######..............] 1/3"), "{shown}");
    assert_eq!(tty.status.code(), Some(1));

    // Containers that crash: the crashing container and its reason, while waiting (live view,
    // redrawn in place) and on timeout (plain lines, then the reasons and kubectl's error).
    let manifest = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: crashy
spec:
  replicas: 2
  selector:
    matchLabels: {app: crashy}
  template:
    metadata:
      labels: {app: crashy}
      annotations: {skiff.dev/simulate: fail}
    spec:
      containers:
      - name: app
        image: busybox
"#;
    let file = s.write_file("crashy.yaml", manifest);
    assert_eq!(skiff_ok(&s, &["apply", "-f", &file.display().to_string()]), "deployment.apps/crashy created\n");
    wait_until("CrashLoopBackOff", || {
        jsonpath(&s, "pods", "{.items[*].status.containerStatuses[*].state.waiting.reason}")
            .split_whitespace()
            .filter(|r| *r == "CrashLoopBackOff")
            .count()
            == 2
    });
    let view = skiff(&s, &["rollout", "status", "deploy/crashy", "--progress=true", "--timeout=3s"]);
    assert_eq!(view.status.code(), Some(1));
    assert_eq!(text(&view.stderr), "error: timed out waiting for the condition\n");
    let shown = text(&view.stdout);
    assert!(shown.contains("\x1b[") && shown.contains("\x1b[J"), "redrawn in place: {shown:?}");
    assert!(shown.contains("available  [....................] 0/2"), "{shown}");
    assert!(shown.contains(" container app: CrashLoopBackOff (last exit code 1, "), "{shown}");
    assert!(shown.contains("restarts): back-off "), "{shown}");
    assert!(shown.contains("the rollout fails after 600s without progress (progressDeadlineSeconds)"), "{shown}");
    assert!(!shown.contains("last log lines"), "simulated nodes have no logs to show: {shown}");

    let ours = skiff(&s, &["rollout", "status", "deploy/crashy", "--timeout=2s"]);
    let theirs = s.kubectl(&["rollout", "status", "deploy/crashy", "--timeout=2s"]);
    assert_eq!(text(&ours.stdout), text(&theirs.stdout));
    assert_eq!(
        text(&ours.stdout),
        "Waiting for deployment \"crashy\" rollout to finish: 0 of 2 updated replicas are available...\n"
    );
    assert_eq!((ours.status.code(), theirs.status.code()), (Some(1), Some(1)));
    let timed_out = text(&theirs.stderr);
    assert_eq!(timed_out, "error: timed out waiting for the condition\n");
    let why = text(&ours.stderr);
    assert!(why.ends_with(&timed_out), "{why}");
    assert_eq!(why.matches(" container app: CrashLoopBackOff (last exit code 1, ").count(), 2, "{why}");
}

/// `skiff completion bash|zsh|fish` prints scripts the shells accept; bash completes verbs with it.
#[test]
fn shell_completion_scripts() {
    let bin = env!("CARGO_BIN_EXE_skiff");
    let script = format!(
        "source <({bin} completion bash) && COMP_WORDS=(skiff ro) COMP_CWORD=1 COMP_LINE='skiff ro' COMP_POINT=8 \
         && _skiff skiff ro skiff && echo \"${{COMPREPLY[@]}}\""
    );
    let out = Command::new("bash").args(["-c", &script]).output().expect("run bash");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "rollout");
    for shell in ["zsh", "fish"] {
        let out = Command::new(bin).args(["completion", shell]).output().expect("run skiff");
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("rollout"), "{shell} script names the verbs");
    }
    let out = Command::new(bin).args(["completion", "tcsh"]).output().expect("run skiff");
    assert!(!out.status.success(), "an unknown shell is an error");
}

/// Bad input without a server: an unknown verb, a missing file, YAML with a syntax error (its line
/// and column reported): a clear error and a non-zero exit, never a panic.
#[test]
fn bad_input_gets_clear_errors() {
    let bin = env!("CARGO_BIN_EXE_skiff");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: [1\n").expect("write");
    let missing = dir.path().join("missing.yaml");
    let data_dir = dir.path().join("server").display().to_string();
    let server = |flags: &[&str]| -> Vec<String> {
        let mut args: Vec<String> =
            ["server", "--no-agent", "--port", "0", "--data-dir", &data_dir].map(String::from).into();
        args.extend(flags.iter().map(|f| f.to_string()));
        args
    };
    let cases: [(Vec<String>, &str); 6] = [
        (server(&["--leader-elect-lease-duration", "10s"]), "leaseDuration must be greater than renewDeadline"),
        (
            server(&["--leader-elect-renew-deadline", "2s", "--leader-elect-retry-period", "2s"]),
            "renewDeadline must be greater than retryPeriod*JitterFactor",
        ),
        (server(&["--leader-elect-retry-period", "soon"]), "invalid value 'soon' for '--leader-elect-retry-period"),
        (vec!["frobnicate".into()], "unrecognized subcommand 'frobnicate'"),
        (
            vec!["apply".into(), "-f".into(), missing.display().to_string()],
            &format!("error: the path \"{}\" does not exist", missing.display()),
        ),
        (vec!["apply".into(), "-f".into(), bad.display().to_string(), "--dry-run=client".into()], "line 5 column 2"),
    ];
    for (args, want) in cases {
        let out = Command::new(bin).args(&args).env("KUBECONFIG", "/nonexistent").output().expect("run skiff");
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} fails");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
