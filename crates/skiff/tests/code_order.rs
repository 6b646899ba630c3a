//! `code-order.txt` (see `build.rs` and `scripts/code-order.sh`) is a list lld can read: one
//! symbol name per line (Rust's mangled names, legacy `_ZN` or v0 `_R`, and the C functions
//! linked in, such as SQLite's), comments aside, each once.

use std::collections::HashSet;

#[test]
fn the_code_order_list_is_one_symbol_name_per_line() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/code-order.txt");
    let text = std::fs::read_to_string(path).expect("code-order.txt");
    let names: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let rust = names.iter().filter(|n| n.starts_with("_ZN") || n.starts_with("_R")).count();
    assert!(rust > 1000, "{rust} Rust names: regenerate with scripts/code-order.sh");
    let mut seen = HashSet::new();
    for name in &names {
        let mut chars = name.chars();
        let first = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$'));
        assert!(first && rest, "not a symbol name: {name:?}");
        assert!(seen.insert(name), "listed twice: {name}");
    }
}
