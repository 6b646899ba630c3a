//! The runtime's records on disk: a small JSON file per sandbox (`<sandbox dir>/sandbox.json`)
//! and per container (`<bundle>/container.json`), so a restarted agent can find the pods and
//! containers it had started (they keep running while it is away) and adopt them, as containerd
//! reloads its metadata on start.
//!
//! Records are written atomically: the JSON goes to a temporary file in the same directory,
//! is flushed to disk, then renamed over the record, so a reader (or an agent killed mid-write)
//! sees either the old or the new record, never half of one. Timestamps are RFC 3339 strings.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A record that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// File trouble.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The record.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The record is not valid JSON of the expected shape.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The record.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

fn io(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io { context, path, source }
}

/// Writes `value` as JSON to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Parse { path: path.into(), source })?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    file.write_all(&bytes).map_err(io("writing", &tmp))?;
    file.sync_all().map_err(io("syncing", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io("renaming", path))
}

/// Reads the JSON record at `path`; `Ok(None)` when it does not exist.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map(Some).map_err(|source| StateError::Parse { path: path.into(), source })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("reading", path)(e)),
    }
}

/// The sub-directories of `dir` (none if it does not exist), sorted by name.
pub fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// A timestamp as a record stores it.
pub fn format_time(t: jiff::Timestamp) -> String {
    t.to_string()
}

/// A record's timestamp; `None` when absent or unparsable.
pub fn parse_time(text: Option<&str>) -> Option<jiff::Timestamp> {
    text?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Rec {
        id: String,
        n: u32,
    }

    #[test]
    fn writes_atomically_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rec.json");
        assert_eq!(read::<Rec>(&path).expect("absent"), None);
        write_atomic(&path, &Rec { id: "a".into(), n: 1 }).expect("write");
        write_atomic(&path, &Rec { id: "a".into(), n: 2 }).expect("overwrite");
        assert_eq!(read::<Rec>(&path).expect("read"), Some(Rec { id: "a".into(), n: 2 }));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["rec.json".to_string()], "no temporary file is left");
        std::fs::write(&path, b"{\"id\":").expect("truncate");
        assert!(matches!(read::<Rec>(&path), Err(StateError::Parse { .. })));
    }

    #[test]
    fn times_round_trip() {
        let t: jiff::Timestamp = "2024-05-01T10:20:30.123456789Z".parse().expect("ts");
        assert_eq!(parse_time(Some(&format_time(t))), Some(t));
        assert_eq!(parse_time(Some("nope")), None);
        assert_eq!(parse_time(None), None);
    }

    #[test]
    fn lists_subdirectories_sorted() {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["b", "a"] {
            std::fs::create_dir(dir.path().join(d)).expect("mkdir");
        }
        std::fs::write(dir.path().join("file"), b"").expect("file");
        assert_eq!(subdirs(dir.path()), vec![dir.path().join("a"), dir.path().join("b")]);
        assert!(subdirs(&dir.path().join("missing")).is_empty());
    }
}
