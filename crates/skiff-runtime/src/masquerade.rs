//! One node-level masquerade rule set for the pod network, instead of the bridge plugin's
//! `ipMasq` (a chain and rules per pod, added and deleted with every sandbox: about 20 ms of
//! `iptables` per pod start and 35 ms per stop, serialized on the xtables lock when many pods
//! start at once). As kubenet and flannel do it:
//!
//! ```text
//! -A POSTROUTING -s <node pod subnet> -m comment --comment "skiff: pods of <bridge>" -j SKIFF-MASQ-<bridge>
//! -A SKIFF-MASQ-<bridge> -d <cluster cidr> -j RETURN      (pod to pod, any node: no NAT)
//! -A SKIFF-MASQ-<bridge> -d 224.0.0.0/4 -j RETURN         (multicast, as the bridge plugin)
//! -A SKIFF-MASQ-<bridge> -j MASQUERADE                    (everything else leaves as the node)
//! ```
//!
//! [`plan`] compares what `iptables -S` shows with that and returns the commands that make it so
//! (none when it already is), so an agent restart changes nothing and a new pod subnet replaces
//! the old jump. [`remove_commands`] undoes it.

use std::process::Stdio;

/// The `nat` chain holding the rules for pods on `bridge` (bridge names have at most 15 bytes, so
/// the name stays within iptables' 28).
pub fn chain(bridge: &str) -> String {
    format!("SKIFF-MASQ-{bridge}")
}

fn comment(bridge: &str) -> String {
    format!("skiff: pods of {bridge}")
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The rules, as `iptables -t nat -S` prints them (`-A CHAIN ...`, comment quoted).
fn desired(bridge: &str, subnet: &str, cluster_cidr: &str) -> (String, Vec<String>) {
    let chain = chain(bridge);
    let jump = format!("-A POSTROUTING -s {subnet} -m comment --comment \"{}\" -j {chain}", comment(bridge));
    let rules = vec![
        format!("-A {chain} -d {cluster_cidr} -j RETURN"),
        format!("-A {chain} -d 224.0.0.0/4 -j RETURN"),
        format!("-A {chain} -j MASQUERADE"),
    ];
    (jump, rules)
}

/// `iptables -S` prints a `/32`-less network as given; normalise `a.b.c.d` to `a.b.c.d/32` so
/// both sides compare alike.
fn normalise(cidr: &str) -> String {
    if cidr.contains('/') { cidr.to_string() } else { format!("{cidr}/32") }
}

/// The `iptables -w -t nat ...` argument lists that turn the current state (`postrouting` and
/// `chain_rules`: the output of `iptables -t nat -S POSTROUTING` and `-S <chain>`, empty if the
/// chain does not exist) into the rules for `bridge`'s pods.
pub fn plan(bridge: &str, subnet: &str, cluster_cidr: &str, postrouting: &str, chain_rules: &str) -> Vec<Vec<String>> {
    let (subnet, cluster) = (normalise(subnet), normalise(cluster_cidr));
    let name = chain(bridge);
    let (jump, rules) = desired(bridge, &subnet, &cluster);
    let target = format!("-j {name}");
    let jumps: Vec<&str> =
        postrouting.lines().filter(|l| l.starts_with("-A POSTROUTING ") && l.ends_with(&target)).collect();
    let current: Vec<&str> = chain_rules.lines().filter(|l| l.starts_with("-A ")).collect();
    let chain_exists = chain_rules.lines().any(|l| l == format!("-N {name}"));
    let mut commands = Vec::new();
    if current != rules.iter().map(String::as_str).collect::<Vec<_>>() {
        if chain_exists {
            commands.push(args(&["-F", &name]));
        } else {
            commands.push(args(&["-N", &name]));
        }
        commands.push(args(&["-A", &name, "-d", &cluster, "-j", "RETURN"]));
        commands.push(args(&["-A", &name, "-d", "224.0.0.0/4", "-j", "RETURN"]));
        commands.push(args(&["-A", &name, "-j", "MASQUERADE"]));
    }
    if jumps != [jump.as_str()] {
        for old in &jumps {
            commands.push(delete_of(old));
        }
        let comment = comment(bridge);
        commands.push(args(&["-A", "POSTROUTING", "-s", &subnet, "-m", "comment", "--comment", &comment, "-j", &name]));
    }
    commands
}

/// The `-D` form of an `-A POSTROUTING ...` line from `iptables -S` (the comment unquoted).
fn delete_of(line: &str) -> Vec<String> {
    let mut words = vec!["-D".to_string()];
    let rest = line.strip_prefix("-A ").unwrap_or(line);
    let mut cur = String::new();
    let mut quoted = false;
    for c in rest.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// The commands that remove `bridge`'s rules (given `iptables -t nat -S POSTROUTING`).
pub fn remove_commands(bridge: &str, postrouting: &str) -> Vec<Vec<String>> {
    let name = chain(bridge);
    let target = format!("-j {name}");
    let mut commands: Vec<Vec<String>> = postrouting
        .lines()
        .filter(|l| l.starts_with("-A POSTROUTING ") && l.ends_with(&target))
        .map(delete_of)
        .collect();
    commands.push(args(&["-F", &name]));
    commands.push(args(&["-X", &name]));
    commands
}

/// Why the rules could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("iptables {args}: {message}")]
pub struct MasqueradeError {
    pub args: String,
    pub message: String,
}

async fn iptables(rest: &[String]) -> Result<String, MasqueradeError> {
    let mut all = args(&["-w", "5", "-t", "nat"]);
    all.extend(rest.iter().cloned());
    let failed = |message: String| MasqueradeError { args: all.join(" "), message };
    let out = tokio::process::Command::new("iptables")
        .args(&all)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes the rules for `bridge`'s pods (subnet `subnet`) those of the module docs.
pub async fn ensure(bridge: &str, subnet: &str, cluster_cidr: &str) -> Result<(), MasqueradeError> {
    let postrouting = iptables(&args(&["-S", "POSTROUTING"])).await?;
    // A missing chain is an error for `-S`: read as empty.
    let chain_rules = iptables(&args(&["-S", &chain(bridge)])).await.unwrap_or_default();
    for command in plan(bridge, subnet, cluster_cidr, &postrouting, &chain_rules) {
        iptables(&command).await?;
    }
    Ok(())
}

/// Removes `bridge`'s rules and chain (missing ones are fine). Blocking (it runs `iptables`
/// directly): for clean-up code such as a test's or a benchmark's `Drop`.
pub fn remove(bridge: &str) {
    let iptables = |rest: &[String]| {
        std::process::Command::new("iptables")
            .args(["-w", "5", "-t", "nat"])
            .args(rest)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
    };
    let Ok(out) = iptables(&args(&["-S", "POSTROUTING"])) else { return };
    for command in remove_commands(bridge, &String::from_utf8_lossy(&out.stdout)) {
        let _ = iptables(&command);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_string).collect()
    }

    const CHAIN_OK: &str = "-N SKIFF-MASQ-br0\n-A SKIFF-MASQ-br0 -d 10.42.0.0/16 -j RETURN\n\
                            -A SKIFF-MASQ-br0 -d 224.0.0.0/4 -j RETURN\n-A SKIFF-MASQ-br0 -j MASQUERADE\n";
    const JUMP_OK: &str = "-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.42.0.0/24 -m comment --comment \
                           \"skiff: pods of br0\" -j SKIFF-MASQ-br0\n";

    #[test]
    fn from_nothing_creates_the_chain_and_the_jump() {
        let got = plan("br0", "10.42.0.0/24", "10.42.0.0/16", "-P POSTROUTING ACCEPT\n", "");
        let mut jump = words("-A POSTROUTING -s 10.42.0.0/24 -m comment --comment");
        jump.extend(["skiff: pods of br0".to_string(), "-j".into(), "SKIFF-MASQ-br0".into()]);
        assert_eq!(
            got,
            vec![
                words("-N SKIFF-MASQ-br0"),
                words("-A SKIFF-MASQ-br0 -d 10.42.0.0/16 -j RETURN"),
                words("-A SKIFF-MASQ-br0 -d 224.0.0.0/4 -j RETURN"),
                words("-A SKIFF-MASQ-br0 -j MASQUERADE"),
                jump,
            ]
        );
    }

    #[test]
    fn in_place_changes_nothing() {
        assert_eq!(plan("br0", "10.42.0.0/24", "10.42.0.0/16", JUMP_OK, CHAIN_OK), Vec::<Vec<String>>::new());
    }

    #[test]
    fn a_new_subnet_replaces_the_jump() {
        let got = plan("br0", "10.42.7.0/24", "10.42.0.0/16", JUMP_OK, CHAIN_OK);
        let mut old = words("-D POSTROUTING -s 10.42.0.0/24 -m comment --comment");
        old.extend(["skiff: pods of br0".to_string(), "-j".into(), "SKIFF-MASQ-br0".into()]);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], old);
        assert_eq!(&got[1][..4], &words("-A POSTROUTING -s 10.42.7.0/24")[..]);
    }

    #[test]
    fn a_changed_cluster_range_rewrites_the_chain_only() {
        let got = plan("br0", "10.42.0.0/24", "10.40.0.0/13", JUMP_OK, CHAIN_OK);
        assert_eq!(got[0], words("-F SKIFF-MASQ-br0"));
        assert_eq!(got[1], words("-A SKIFF-MASQ-br0 -d 10.40.0.0/13 -j RETURN"));
        assert_eq!(got.len(), 4, "{got:?}");
    }

    #[test]
    fn duplicate_jumps_are_collapsed_and_other_bridges_left_alone() {
        let other = "-A POSTROUTING -s 10.43.0.0/24 -m comment --comment \"skiff: pods of br1\" -j SKIFF-MASQ-br1\n";
        let current = format!("{JUMP_OK}{JUMP_OK}{other}");
        let got = plan("br0", "10.42.0.0/24", "10.42.0.0/16", &current, CHAIN_OK);
        assert_eq!(got.iter().filter(|c| c[0] == "-D").count(), 2);
        assert!(got.iter().all(|c| !c.contains(&"SKIFF-MASQ-br1".to_string())), "{got:?}");
        assert_eq!(got.last().map(|c| c[0].as_str()), Some("-A"));
    }

    #[test]
    fn removal_deletes_jumps_then_the_chain() {
        let got = remove_commands("br0", JUMP_OK);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0][0], "-D");
        assert_eq!(got[1], words("-F SKIFF-MASQ-br0"));
        assert_eq!(got[2], words("-X SKIFF-MASQ-br0"));
    }

    #[test]
    fn single_addresses_compare_with_their_prefix() {
        assert_eq!(normalise("10.1.2.3"), "10.1.2.3/32");
        assert_eq!(normalise("10.1.0.0/16"), "10.1.0.0/16");
    }
}
