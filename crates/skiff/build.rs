//! Links the functions listed in `code-order.txt` first in the release binary's `.text`, in that
//! order (lld's `--symbol-ordering-file`). The list is what `skiff server` and `skiff agent` run
//! from start to rest (written by `scripts/code-order.sh`): laid out together, that code spans
//! fewer pages, and a process at rest maps fewer pages of the binary (each page it touches maps
//! the 64 KiB around it). Names not in the binary are ignored, so a stale list only costs memory.
//!
//! Only for release builds with lld, Rust's default linker on x86_64 Linux (since 1.90);
//! `SKIFF_CODE_ORDER=off` links without the list (what the script profiles).
//!
//! The same builds pack their relative relocations (`-z pack-relative-relocs`, DT_RELR, read by
//! glibc 2.36 and later): the dynamic loader reads every relocation at start, and the 48,000
//! RELA entries of the position-independent binary (24 bytes each, 1.1 MB) stay resident for the
//! process's life; packed they take about 19 KB.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=SKIFF_CODE_ORDER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let release = var("PROFILE") == "release";
    let lld_target = var("TARGET") == "x86_64-unknown-linux-gnu";
    let list = Path::new(&var("CARGO_MANIFEST_DIR")).join("code-order.txt");
    if release && lld_target {
        println!("cargo:rustc-link-arg-bin=skiff=-Wl,-z,pack-relative-relocs");
    }
    if release && lld_target && var("SKIFF_CODE_ORDER") != "off" {
        println!("cargo:rerun-if-changed={}", list.display());
        println!("cargo:rustc-link-arg-bin=skiff=-Wl,--symbol-ordering-file={}", list.display());
        println!("cargo:rustc-link-arg-bin=skiff=-Wl,--no-warn-symbol-ordering");
    }
}
