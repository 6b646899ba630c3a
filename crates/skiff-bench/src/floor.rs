//! The floor: `runc create` + `runc start` of one container alone, from a bundle of the same demo
//! image (its layer unpacked, `runc spec`'s defaults with the image's command), with a private runc
//! root. Nothing else (no network set-up, no API) is in the figure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::procs::run;

/// A bundle and a runc root in `dir`; dropping it deletes any container left.
pub struct Floor {
    bundle: PathBuf,
    root: PathBuf,
    ids: Vec<String>,
}

/// The digest (hex) of the first layer of the single manifest of an OCI image layout, from its
/// `index.json` and manifest texts.
pub fn layer_digest(index: &str, read_blob: impl Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<String> {
    let index: Value = serde_json::from_str(index)?;
    let manifest = index["manifests"][0]["digest"].as_str().context("index.json names a manifest")?;
    let manifest: Value = serde_json::from_str(&read_blob(manifest.trim_start_matches("sha256:"))?)?;
    let layer = manifest["layers"][0]["digest"].as_str().context("the manifest names a layer")?;
    Ok(layer.trim_start_matches("sha256:").to_string())
}

/// `runc spec`'s config made runnable detached: no terminal, the image's command.
pub fn detached_spec(mut spec: Value, args: &[&str]) -> Value {
    spec["process"]["terminal"] = Value::Bool(false);
    spec["process"]["args"] = args.iter().map(|a| Value::String(a.to_string())).collect();
    spec
}

impl Floor {
    pub fn new(dir: &Path, archive: &Path) -> anyhow::Result<Floor> {
        let layout = dir.join("layout");
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        std::fs::create_dir_all(&layout)?;
        std::fs::create_dir_all(&rootfs)?;
        run(Command::new("tar").arg("-xf").arg(archive).arg("-C").arg(&layout))?;
        let blob =
            |d: &str| -> anyhow::Result<String> { Ok(std::fs::read_to_string(layout.join("blobs/sha256").join(d))?) };
        let layer = layer_digest(&std::fs::read_to_string(layout.join("index.json"))?, blob)?;
        run(Command::new("tar").arg("-xf").arg(layout.join("blobs/sha256").join(layer)).arg("-C").arg(&rootfs))?;
        run(Command::new("runc").args(["spec", "--bundle"]).arg(&bundle))?;
        let spec: Value = serde_json::from_str(&std::fs::read_to_string(bundle.join("config.json"))?)?;
        let spec = detached_spec(spec, &["httpd", "-f", "-p", "8080", "-h", "/www"]);
        std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&spec)?)?;
        Ok(Floor { bundle, root: dir.join("runc"), ids: Vec::new() })
    }

    fn runc(&self) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(&self.root).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        c
    }

    /// Creates and starts container `id`; the time of both, then deletes it (untimed).
    pub fn start_once(&mut self, id: &str) -> anyhow::Result<Duration> {
        self.ids.push(id.to_string());
        let t0 = Instant::now();
        let created = self.runc().args(["create", "--bundle"]).arg(&self.bundle).arg(id).status()?;
        anyhow::ensure!(created.success(), "runc create failed: {created}");
        let started = self.runc().args(["start", id]).status()?;
        let took = t0.elapsed();
        anyhow::ensure!(started.success(), "runc start failed: {started}");
        let _ = self.runc().args(["delete", "--force", id]).status();
        Ok(took)
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.runc().args(["delete", "--force", id]).status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_layer() {
        let index = r#"{"manifests": [{"digest": "sha256:m1"}]}"#;
        let blob = |d: &str| -> anyhow::Result<String> {
            assert_eq!(d, "m1");
            Ok(r#"{"layers": [{"digest": "sha256:l1"}]}"#.to_string())
        };
        assert_eq!(layer_digest(index, blob).expect("layer"), "l1");
        assert!(layer_digest("{}", blob).is_err());
    }

    #[test]
    fn spec_runs_detached() {
        let spec = serde_json::json!({"process": {"terminal": true, "args": ["sh"], "cwd": "/"}});
        let got = detached_spec(spec, &["httpd", "-f"]);
        assert_eq!(got["process"], serde_json::json!({"terminal": false, "args": ["httpd", "-f"], "cwd": "/"}));
    }
}
