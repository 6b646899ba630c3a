//! `code-order.txt` (see `build.rs` and `scripts/code-order.sh`) is a list lld can read: one
//! mangled symbol name per line (Rust's legacy `_ZN` or v0 `_R` scheme), comments aside, each once.

use std::collections::HashSet;

#[test]
fn the_code_order_list_is_one_mangled_name_per_line() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/code-order.txt");
    let text = std::fs::read_to_string(path).expect("code-order.txt");
    let names: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(names.len() > 1000, "{} names: regenerate with scripts/code-order.sh", names.len());
    let mut seen = HashSet::new();
    for name in &names {
        assert!(name.starts_with("_ZN") || name.starts_with("_R"), "not a Rust symbol: {name:?}");
        assert!(!name.contains(char::is_whitespace) && !name.contains('#'), "{name:?}");
        assert!(seen.insert(name), "listed twice: {name}");
    }
}
