//! Directories whose subdirectories are spread over the file system: one per pod or container
//! (bundles, runc state, sandboxes, pod directories), created and removed with every pod.
//!
//! ext4 places a new file in its directory's block group and takes the group's first free inode;
//! without a journal (this project's test VM, and ext4 created with `^has_journal`) it skips every
//! inode freed in the last 30 seconds, checking each one in the inode table. When all pods'
//! directories share one group, the files of the pods just deleted sit in front of every new
//! allocation: a pod's start scanned thousands of them per file (about a fifth of all CPU while
//! 100 pods started, in `recently_deleted`). The `T` attribute (`FS_TOPDIR_FL`, `chattr +T`)
//! makes the Orlov allocator treat the directory as the top of a hierarchy and place each new
//! subdirectory in a lightly used group instead, so a pod's files land away from the freed ones.
//! File systems without the attribute ignore it; failures are not errors.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use std::ffi::c_long;

/// `FS_TOPDIR_FL` from `linux/fs.h`.
const FS_TOPDIR_FL: c_long = 0x0002_0000;

// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS: _IOR('f', 1, long) / _IOW('f', 2, long). The kernel reads
// and writes an int through the pointer; the value is zeroed first so the long is whole.
nix::ioctl_read!(get_flags, b'f', 1, c_long);
nix::ioctl_write_ptr!(set_flags, b'f', 2, c_long);

/// Creates `dir` (and its parents) and marks it so its subdirectories are spread (see the module
/// docs). Returns whether the mark is set; creating the directory is the only hard failure.
pub fn create(dir: &Path) -> std::io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    Ok(mark(dir).is_ok())
}

fn mark(dir: &Path) -> std::io::Result<()> {
    let file = File::open(dir)?;
    let mut flags: c_long = 0;
    #[allow(unsafe_code)]
    // SAFETY: the fd is open for the call's duration and `flags` outlives it.
    unsafe { get_flags(file.as_raw_fd(), &mut flags) }?;
    if flags & FS_TOPDIR_FL != 0 {
        return Ok(());
    }
    let flags = flags | FS_TOPDIR_FL;
    #[allow(unsafe_code)]
    // SAFETY: as above; the kernel only reads `flags`.
    unsafe { set_flags(file.as_raw_fd(), &flags) }?;
    Ok(())
}

/// Whether `dir` carries the mark.
pub fn is_marked(dir: &Path) -> bool {
    let Ok(file) = File::open(dir) else { return false };
    let mut flags: c_long = 0;
    #[allow(unsafe_code)]
    // SAFETY: as in `mark`.
    let got = unsafe { get_flags(file.as_raw_fd(), &mut flags) };
    got.is_ok() && flags & FS_TOPDIR_FL != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_a_directory_where_the_file_system_supports_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b");
        let marked = create(&dir).expect("create");
        assert!(dir.is_dir());
        assert_eq!(marked, is_marked(&dir), "create reports what it did");
        let ext4 = nix::sys::statfs::statfs(&dir).is_ok_and(|s| s.filesystem_type().0 == 0xEF53);
        assert!(marked || !ext4, "ext4 supports the attribute");
        // Marking again is a no-op that still succeeds.
        assert_eq!(create(&dir).expect("again"), marked);
        // A subdirectory does not inherit the mark (only the parent spreads its children).
        std::fs::create_dir(dir.join("pod")).expect("mkdir");
        assert!(!is_marked(&dir.join("pod")));
    }
}
