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
