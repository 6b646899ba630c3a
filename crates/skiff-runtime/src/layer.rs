//! Unpacking one image layer (a tar, plain, gzip or zstd) into a directory that overlayfs can use as
//! a lower layer. OCI whiteouts become what overlayfs expects: `.wh.<name>` becomes a character
//! device 0/0 named `<name>`, and `.wh..wh..opq` marks its directory opaque with the xattr
//! `trusted.overlay.opaque=y`. The layer's diffID (sha256 of the uncompressed tar) is computed on the
//! way through so the caller can check it against the image config.

use crate::digest::HashingReader;
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// A layer that could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// Reading or decompressing the archive failed.
    #[error("reading layer archive: {0}")]
    Read(#[source] std::io::Error),
    /// Writing an entry into the layer directory failed.
    #[error("unpacking {path}: {source}")]
    Unpack {
        /// The entry's path inside the layer.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An entry's path escapes the layer (`..`), which a well-formed layer never has.
    #[error("layer entry {0} escapes the layer directory")]
    UnsafePath(PathBuf),
}

/// Compression of a layer blob, sniffed from its first bytes (media types lie in `docker save`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A bare tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

/// Which compression `head` (the first bytes of a blob) starts with.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Unpacks the layer blob read from `blob` into `dest` (which must exist and be empty) and returns
/// the diffID, the digest of the uncompressed tar stream.
pub fn unpack(blob: impl Read, dest: &Path) -> Result<String, LayerError> {
    let mut buffered = BufReader::new(blob);
    let head = buffered.fill_buf().map_err(LayerError::Read)?;
    let tar_stream: Box<dyn Read> = match sniff(head) {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(buffered)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(buffered)
                .map_err(|e| LayerError::Read(std::io::Error::other(e.to_string())))?,
        ),
    };
    let mut hashing = HashingReader::new(tar_stream);
    unpack_tar(&mut hashing, dest)?;
    hashing.finish().map_err(LayerError::Read)
}

/// What one tar entry means for the layer directory.
#[derive(Debug, PartialEq, Eq)]
enum EntryAction {
    /// `dir/.wh..wh..opq`: make `dir` opaque.
    Opaque(PathBuf),
    /// `dir/.wh.name`: hide `dir/name` from lower layers.
    Whiteout(PathBuf),
    /// Anything else: unpack as is.
    Regular(PathBuf),
}

/// Classifies an entry path (already relative and clean).
fn classify(path: &Path) -> EntryAction {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if name == OPAQUE_MARKER {
        EntryAction::Opaque(parent)
    } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        EntryAction::Whiteout(parent.join(hidden))
    } else {
        EntryAction::Regular(path.to_path_buf())
    }
}

/// Makes an archive path relative and rejects `..`: `/a/./b` → `a/b`.
fn clean(path: &Path) -> Result<PathBuf, LayerError> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err(LayerError::UnsafePath(path.to_path_buf())),
        }
    }
    Ok(out)
}

/// Creates `dest/rel`'s parent directories and checks that none of them resolves outside `dest`
/// (a symlink planted by an earlier entry).
fn prepare_parent(dest: &Path, rel: &Path) -> Result<PathBuf, LayerError> {
    let target = dest.join(rel);
    let io = |source| LayerError::Unpack { path: rel.to_path_buf(), source };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
        let real_parent = parent.canonicalize().map_err(io)?;
        let real_dest = dest.canonicalize().map_err(io)?;
        if !real_parent.starts_with(&real_dest) {
            return Err(LayerError::UnsafePath(rel.to_path_buf()));
        }
    }
    Ok(target)
}

fn unpack_tar(stream: impl Read, dest: &Path) -> Result<(), LayerError> {
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(LayerError::Read)? {
        let mut entry = entry.map_err(LayerError::Read)?;
        let raw = entry.path().map_err(LayerError::Read)?.into_owned();
        let rel = clean(&raw)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let io = |source| LayerError::Unpack { path: rel.clone(), source };
        match classify(&rel) {
            EntryAction::Opaque(dir) => {
                let target = prepare_parent(dest, &dir.join("x"))?;
                let dir_path = target.parent().map(Path::to_path_buf).unwrap_or(target);
                xattr::set(&dir_path, "trusted.overlay.opaque", b"y").map_err(io)?;
            }
            EntryAction::Whiteout(hidden) => {
                let target = prepare_parent(dest, &hidden)?;
                remove_any(&target).map_err(io)?;
                mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|e| io(e.into()))?;
            }
            EntryAction::Regular(path) => {
                let kind = entry.header().entry_type();
                if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
                    let target = prepare_parent(dest, &path)?;
                    make_special(&entry, kind, &target).map_err(io)?;
                } else {
                    entry.unpack_in(dest).map_err(io)?;
                }
            }
        }
    }
    Ok(())
}

/// Creates a device node or fifo from its header (the tar crate skips them).
fn make_special(entry: &tar::Entry<'_, impl Read>, kind: tar::EntryType, target: &Path) -> std::io::Result<()> {
    let header = entry.header();
    let mode = header.mode()? & 0o7777;
    let major = header.device_major()?.unwrap_or(0);
    let minor = header.device_minor()?.unwrap_or(0);
    let flag = if kind.is_character_special() {
        SFlag::S_IFCHR
    } else if kind.is_block_special() {
        SFlag::S_IFBLK
    } else {
        SFlag::S_IFIFO
    };
    remove_any(target)?;
    mknod(target, flag, Mode::from_bits_truncate(mode), makedev(major.into(), minor.into()))?;
    let uid = header.uid()? as u32;
    let gid = header.gid()? as u32;
    std::os::unix::fs::lchown(target, Some(uid), Some(gid))
}

/// Removes whatever is at `path` (file, link or directory tree); absent is fine.
fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn classifies_whiteouts() {
        let cases = [
            ("a/b/.wh..wh..opq", EntryAction::Opaque("a/b".into())),
            (".wh..wh..opq", EntryAction::Opaque("".into())),
            ("etc/.wh.passwd", EntryAction::Whiteout("etc/passwd".into())),
            (".wh.tmp", EntryAction::Whiteout("tmp".into())),
            ("etc/passwd", EntryAction::Regular("etc/passwd".into())),
            ("etc/x.wh.y", EntryAction::Regular("etc/x.wh.y".into())),
        ];
        for (path, want) in cases {
            assert_eq!(classify(Path::new(path)), want, "{path}");
        }
    }

    #[test]
    fn cleans_paths() {
        assert_eq!(clean(Path::new("/a/./b/")).expect("clean"), PathBuf::from("a/b"));
        assert_eq!(clean(Path::new("./")).expect("clean"), PathBuf::new());
        assert!(matches!(clean(Path::new("a/../../b")), Err(LayerError::UnsafePath(_))));
    }

    #[test]
    fn sniffs_compression() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
        assert_eq!(sniff(b"etc/\0\0"), Compression::None);
        assert_eq!(sniff(&[]), Compression::None);
    }

    fn header() -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_mode(0o644);
        h
    }

    fn tar_with(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = header();
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, *d).expect("append");
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, path, &[][..]).expect("append");
                }
            }
        }
        b.into_inner().expect("tar")
    }

    /// Needs root (mknod, trusted.* xattrs), which the test machines and CI have.
    #[test]
    fn unpacks_gzip_layer_with_whiteouts() {
        let tar = tar_with(&[
            ("etc/", None),
            ("etc/hosts", Some(b"127.0.0.1 localhost\n")),
            ("etc/.wh.passwd", Some(b"")),
            ("var/cache/", None),
            ("var/cache/.wh..wh..opq", Some(b"")),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).expect("gzip");
        let blob = gz.finish().expect("gzip");
        let dir = tempfile::tempdir().expect("tempdir");
        let diff_id = unpack(&blob[..], dir.path()).expect("unpack");
        assert_eq!(diff_id, crate::digest::sha256(&tar));
        assert_eq!(std::fs::read(dir.path().join("etc/hosts")).expect("hosts"), b"127.0.0.1 localhost\n");
        let wh = std::fs::symlink_metadata(dir.path().join("etc/passwd")).expect("whiteout");
        assert!(wh.file_type().is_char_device());
        assert_eq!(std::os::unix::fs::MetadataExt::rdev(&wh), 0);
        assert_eq!(
            xattr::get(dir.path().join("var/cache"), "trusted.overlay.opaque").expect("xattr"),
            Some(b"y".to_vec())
        );
        assert!(!dir.path().join("var/cache/.wh..wh..opq").exists());
    }

    #[test]
    fn rejects_escaping_entries() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "evil", "/").expect("link");
        let mut h = header();
        h.set_size(0);
        b.append_data(&mut h, "evil/.wh.etc", &[][..]).expect("append");
        let tar = b.into_inner().expect("tar");
        let dir = tempfile::tempdir().expect("tempdir");
        let got = unpack(&tar[..], dir.path());
        assert!(matches!(got, Err(LayerError::UnsafePath(_))), "{got:?}");
    }
}
