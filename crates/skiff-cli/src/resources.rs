//! Turning what the user typed (`deploy`, `pods,rs`, `deployment/web`, `all`) into resources of the
//! static table the server serves (`skiff_api::resource::RESOURCES`), with a suggestion on typos.

use skiff_api::ResourceInfo;
use skiff_api::resource::{RESOURCES, lookup_any};

use crate::error::CliError;

/// One resource type and the names asked for (empty: all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource: &'static ResourceInfo,
    pub names: Vec<String>,
}

/// The `kind[.group]` prefix kubectl prints before names: `pod`, `deployment.apps`.
pub fn kind_prefix(r: &ResourceInfo) -> String {
    let kind = r.kind.to_ascii_lowercase();
    if r.group.is_empty() { kind } else { format!("{kind}.{}", r.group) }
}

/// `resource.group` as it appears in error messages (`deployments.apps`).
pub fn qualified(r: &ResourceInfo) -> String {
    if r.group.is_empty() { r.plural.to_string() } else { format!("{}.{}", r.plural, r.group) }
}

/// Resolves one resource type, or a category (`all`) to its members. Prefers the core `events`.
pub fn resolve_type(name: &str) -> Result<Vec<&'static ResourceInfo>, CliError> {
    let members: Vec<&'static ResourceInfo> =
        RESOURCES.iter().filter(|r| r.categories.contains(&name.to_ascii_lowercase().as_str())).collect();
    if !members.is_empty() {
        return Ok(members);
    }
    lookup_any(name).map(|r| vec![r]).ok_or_else(|| unknown_type(name))
}

fn unknown_type(name: &str) -> CliError {
    let hint = suggest(name).map(|s| format!("\nDid you mean \"{s}\"?")).unwrap_or_default();
    CliError::Failed(format!("the server doesn't have a resource type \"{name}\"{hint}"))
}

/// The nearest known resource name (plural, singular, short name) within an edit distance of 2.
pub fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    RESOURCES
        .iter()
        .flat_map(|r| [r.plural, r.singular].into_iter().chain(r.short_names.iter().copied()))
        .map(|candidate| (levenshtein(&lower, candidate), candidate))
        .filter(|(d, c)| *d <= 2 && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The name among `names` nearest to a mistyped `typed` (edit distance at most 1 for names of up
/// to 4 letters, else 2; ties broken by order), for a `Did you mean` hint.
pub fn nearest<'a>(typed: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .filter(|n| *n != typed)
        .map(|n| (levenshtein(typed, n), n))
        .filter(|(d, n)| *d <= if n.chars().count() <= 4 { 1 } else { 2 })
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Edit distance (insertions, deletions, substitutions, and swaps of two adjacent letters, the
/// commonest typo: the optimal string alignment distance).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows: Vec<Vec<usize>> = (0..=a.len()).map(|i| vec![i; b.len() + 1]).collect();
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j - 1] + cost).min(rows[i - 1][j] + 1).min(rows[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// kubectl's resource builder arguments: `TYPE[,TYPE...] [NAME...]` or `TYPE/NAME ...`.
pub fn parse_args(args: &[String]) -> Result<Vec<Target>, CliError> {
    let Some(first) = args.first() else {
        return Err(CliError::Usage("You must specify the type of resource to get. Use \"skiff api-resources\" for a complete list of supported resources.".into()));
    };
    if args.iter().any(|a| a.contains('/')) {
        let mut targets: Vec<Target> = Vec::new();
        for arg in args {
            let Some((kind, name)) = arg.split_once('/') else {
                return Err(CliError::Usage("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'skiff get resource/<resource_name>' instead of 'skiff get resource resource/<resource_name>'".to_string()));
            };
            let resource = *resolve_type(kind)?.first().ok_or_else(|| unknown_type(kind))?;
            match targets.iter_mut().find(|t| std::ptr::eq(t.resource, resource)) {
                Some(t) => t.names.push(name.to_string()),
                None => targets.push(Target { resource, names: vec![name.to_string()] }),
            }
        }
        return Ok(targets);
    }
    let names: Vec<String> = args[1..].to_vec();
    let mut targets = Vec::new();
    for kind in first.split(',').filter(|k| !k.is_empty()) {
        for resource in resolve_type(kind)? {
            targets.push(Target { resource, names: names.clone() });
        }
    }
    Ok(targets)
}

/// The request path of a collection (`ns` None: across all namespaces, or cluster-scoped).
pub fn collection_path(r: &ResourceInfo, ns: Option<&str>) -> String {
    let root =
        if r.group.is_empty() { format!("/api/{}", r.version) } else { format!("/apis/{}/{}", r.group, r.version) };
    match ns {
        Some(ns) if r.namespaced() => format!("{root}/namespaces/{ns}/{}", r.plural),
        _ => format!("{root}/{}", r.plural),
    }
}

/// The request path of one object.
pub fn object_path(r: &ResourceInfo, ns: &str, name: &str) -> String {
    format!("{}/{name}", collection_path(r, Some(ns)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_resource_arguments() {
        let t = parse_args(&s(&["deploy", "web", "api"])).expect("parse");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].resource.plural, "deployments");
        assert_eq!(t[0].names, s(&["web", "api"]));
        let t = parse_args(&s(&["po,rs"])).expect("parse");
        assert_eq!(t.iter().map(|t| t.resource.plural).collect::<Vec<_>>(), ["pods", "replicasets"]);
        let t = parse_args(&s(&["all"])).expect("parse");
        assert_eq!(t.iter().map(|t| t.resource.plural).collect::<Vec<_>>(), ["pods", "deployments", "replicasets"]);
        let t = parse_args(&s(&["deployment/web", "pod/p", "deploy/api"])).expect("parse");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].names, s(&["web", "api"]));
        let ev = parse_args(&s(&["ev"])).expect("parse");
        assert_eq!(ev[0].resource.group, "");
    }

    #[test]
    fn suggests_the_nearest_name_on_typos() {
        let err = parse_args(&s(&["deploymnt"])).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "error: the server doesn't have a resource type \"deploymnt\"\nDid you mean \"deployment\"?"
        );
        assert_eq!(suggest("pdos"), Some("pods"));
        assert_eq!(suggest("zzzzzzzz"), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("deploymnets", "deployments"), 1);
        assert_eq!(levenshtein("", "abc"), 3);
        let err = parse_args(&s(&["deploymnets"])).expect_err("transposed letters");
        assert_eq!(
            err.to_string(),
            "error: the server doesn't have a resource type \"deploymnets\"\nDid you mean \"deployments\"?"
        );
        let names = ["web", "api", "web-canary"];
        let cases = [("wbe", Some("web")), ("ap", Some("api")), ("web-canry", Some("web-canary")), ("db", None)];
        for (typed, want) in cases {
            assert_eq!(nearest(typed, names), want, "{typed}");
        }
    }

    #[test]
    fn builds_paths() {
        let d = lookup_any("deploy").expect("deploy");
        assert_eq!(collection_path(d, Some("dev")), "/apis/apps/v1/namespaces/dev/deployments");
        assert_eq!(collection_path(d, None), "/apis/apps/v1/deployments");
        let n = lookup_any("no").expect("nodes");
        assert_eq!(collection_path(n, Some("dev")), "/api/v1/nodes");
        assert_eq!(object_path(d, "default", "web"), "/apis/apps/v1/namespaces/default/deployments/web");
        assert_eq!(kind_prefix(d), "deployment.apps");
        assert_eq!(qualified(d), "deployments.apps");
    }
}
