//! Filesystem access with another user's rights, without forking.
//!
//! Each operation runs on a fresh, short-lived thread that first switches its own credentials
//! (supplementary groups, fsgid, fsuid) and then stats, checks or opens the path. The kernel keeps
//! credentials per thread; only glibc's wrappers broadcast them to every thread of the process
//! (setxid signal), so the raw syscalls here change nothing but that thread, which then exits.
//! Dropping the fsuid from 0 also clears the filesystem capabilities (CAP_DAC_OVERRIDE...) from
//! the thread's effective set, so root's rights do not leak into the check; that, and the switch
//! itself, is verified, and anything unexpected fails closed with EPERM.

use crate::error::{errno, Error, Result};
use libc::{c_int, c_long};
use std::ffi::{CString, OsStr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// The thread only runs a few syscalls.
const THREAD_STACK: usize = 128 * 1024;

/// Capabilities that bypass file permission checks (linux/capability.h).
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_FOWNER: u32 = 3;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Whose rights: a uid, its primary gid and the supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

fn cpath(path: &OsStr) -> Result<CString> {
    CString::new(path.as_bytes()).map_err(|_| {
        Error::invalid(format!(
            "{}: argument contains a NUL byte",
            path.to_string_lossy()
        ))
    })
}

/// One raw syscall; -1 becomes the errno with `what` as context.
fn sys(r: c_long, what: impl FnOnce() -> String) -> Result<c_long> {
    if r == -1 {
        Err(Error::new(errno(), what()))
    } else {
        Ok(r)
    }
}

/// Raw getgroups into `list` (an empty list asks for the count).
fn getgroups(list: &mut [u32]) -> Result<usize> {
    // SAFETY: the kernel writes at most list.len() gids.
    let r = unsafe { libc::syscall(libc::SYS_getgroups, list.len(), list.as_mut_ptr()) };
    Ok(sys(r, || "getgroups".into())? as usize)
}

/// The calling thread's supplementary groups (raw getgroups: this thread's own).
fn thread_groups() -> Result<Vec<u32>> {
    let mut groups = vec![0u32; getgroups(&mut [])?];
    let n = getgroups(&mut groups)?;
    groups.truncate(n);
    Ok(groups)
}

/// Raw setfsuid/setfsgid (`nr`): sets `id` and returns the previous value; an invalid id such as
/// u32::MAX changes nothing, which reads the current value.
fn setfs(nr: c_long, id: u32) -> u32 {
    // SAFETY: integer arguments; affects the calling thread only.
    unsafe { libc::syscall(nr, id) as u32 }
}

fn sorted(groups: &[u32]) -> Vec<u32> {
    let mut g = groups.to_vec();
    g.sort_unstable();
    g.dedup();
    g
}

/// setfsuid/setfsgid report nothing on failure: set, then read back with an invalid id (-1 changes
/// nothing and returns the current value).
fn set_fs_id(nr: c_long, name: &str, id: u32) -> Result<()> {
    setfs(nr, id);
    if setfs(nr, u32::MAX) != id {
        return Err(Error::new(libc::EPERM, format!("{name} {id}")));
    }
    Ok(())
}

/// This thread's effective capability set (raw capget: per thread).
fn effective_caps() -> Result<u64> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: version 3 takes two data structs.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    sys(r, || "capget".into())?;
    Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// Switch the calling thread (which must be a throwaway thread) to `creds` for file access.
fn become_user(creds: &Creds) -> Result<()> {
    let want = sorted(&creds.groups);
    // setgroups needs CAP_SETGID even when nothing changes: skip it then, so that a non-root
    // caller can act as itself.
    if sorted(&thread_groups()?) != want {
        // SAFETY: a valid list of want.len() gids; raw syscall: this thread only.
        let r = unsafe { libc::syscall(libc::SYS_setgroups, want.len(), want.as_ptr()) };
        sys(r, || format!("setgroups {:?}", creds.groups))?;
    }
    set_fs_id(libc::SYS_setfsgid, "setfsgid", creds.gid)?;
    set_fs_id(libc::SYS_setfsuid, "setfsuid", creds.uid)?;
    if creds.uid != 0 {
        let bypass =
            (1u64 << CAP_DAC_OVERRIDE) | (1u64 << CAP_DAC_READ_SEARCH) | (1u64 << CAP_FOWNER);
        if effective_caps()? & bypass != 0 {
            // e.g. SECBIT_NO_SETUID_FIXUP: the permission checks would still be root's.
            return Err(Error::new(
                libc::EPERM,
                format!("setfsuid {}: file capabilities kept", creds.uid),
            ));
        }
    }
    Ok(())
}

/// Run `op` on a new thread that has `creds` as its filesystem identity; the caller's thread is
/// never touched.
pub fn with_creds<T: Send>(creds: &Creds, op: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("pmon3-fsas".into())
            .stack_size(THREAD_STACK)
            .spawn_scoped(scope, || {
                become_user(creds)?;
                op()
            })
            .map_err(|e| {
                Error::new(
                    e.raw_os_error().unwrap_or(libc::EAGAIN),
                    "thread for file access",
                )
            })?;
        worker
            .join()
            .unwrap_or_else(|_| Err(Error::new(libc::EIO, "file access thread panicked")))
    })
}

/// fstatat as `creds`; `follow` false stats a symlink itself.
pub fn stat_as(path: &OsStr, creds: &Creds, follow: bool) -> Result<libc::stat> {
    let c = cpath(path)?;
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    with_creds(creds, || {
        // SAFETY: stat is plain old data.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid C string and out pointer.
        let r = unsafe { libc::fstatat(libc::AT_FDCWD, c.as_ptr(), &mut st, flags) };
        sys(r as c_long, || format!("stat {}", path.to_string_lossy()))?;
        Ok(st)
    })
}

/// faccessat2(AT_EACCESS) as `creds`: the check uses the switched fsuid/fsgid (without AT_EACCESS
/// the kernel would use the real ids, i.e. ours). Kernels before 5.8 have no faccessat2: ENOSYS,
/// since the old syscall cannot take AT_EACCESS.
pub fn access_as(path: &OsStr, mode: i32, creds: &Creds) -> Result<()> {
    let c = cpath(path)?;
    with_creds(creds, || {
        // SAFETY: valid C string, integer arguments.
        let r = unsafe {
            libc::syscall(
                libc::SYS_faccessat2,
                libc::AT_FDCWD,
                c.as_ptr(),
                mode,
                libc::AT_EACCESS,
            )
        };
        sys(r, || format!("access {}", path.to_string_lossy()))?;
        Ok(())
    })
}

/// openat as `creds` (always O_CLOEXEC); the descriptor belongs to the whole process. A file it
/// creates is owned by `creds`.
pub fn open_as(path: &OsStr, flags: i32, mode: u32, creds: &Creds) -> Result<OwnedFd> {
    let c = cpath(path)?;
    with_creds(creds, || {
        // SAFETY: valid C string; mode is read only with O_CREAT/O_TMPFILE.
        let fd = unsafe {
            libc::openat(
                libc::AT_FDCWD,
                c.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        sys(fd as c_long, || format!("open {}", path.to_string_lossy()))?;
        // SAFETY: a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    const NOBODY: u32 = 65534;
    /// A group nobody is not in, unless we say so.
    const OTHER_GID: u32 = 54321;

    fn nobody(groups: &[u32]) -> Creds {
        Creds {
            uid: NOBODY,
            gid: NOBODY,
            groups: groups.to_vec(),
        }
    }

    fn is_root() -> bool {
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn chown(p: &Path, uid: u32, gid: u32) {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }

    /// /tmp/pmon3-fsas-<pid>-<tag> (0755) with:
    ///   private/ 0700 root, private/f 0644 root
    ///   secret 0600 root, mine 0600 nobody, group 0640 root:OTHER_GID, open/ 0777
    fn tree(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pmon3-fsas-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o755);
        std::fs::create_dir(dir.join("private")).unwrap();
        chmod(&dir.join("private"), 0o700);
        std::fs::write(dir.join("private/f"), "f").unwrap();
        chmod(&dir.join("private/f"), 0o644);
        for (name, mode, uid, gid) in [
            ("secret", 0o600, 0, 0),
            ("mine", 0o600, NOBODY, NOBODY),
            ("group", 0o640, 0, OTHER_GID),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, name).unwrap();
            chmod(&p, mode);
            chown(&p, uid, gid);
        }
        std::fs::create_dir(dir.join("open")).unwrap();
        chmod(&dir.join("open"), 0o777);
        dir
    }

    /// (fsuid, fsgid, groups) of the calling thread, read without changing them.
    fn own_fs_ids() -> (u32, u32, Vec<u32>) {
        (
            setfs(libc::SYS_setfsuid, u32::MAX),
            setfs(libc::SYS_setfsgid, u32::MAX),
            thread_groups().unwrap(),
        )
    }

    fn os(p: &Path) -> &OsStr {
        p.as_os_str()
    }

    #[test]
    fn nobody_gets_nobodys_rights_only() {
        if !is_root() {
            eprintln!("skipped: not root");
            return;
        }
        let dir = tree("rights");
        let before = own_fs_ids();
        let who = nobody(&[NOBODY]);

        // No search permission on a 0700 directory.
        let e = stat_as(os(&dir.join("private/f")), &who, true).unwrap_err();
        assert_eq!(e.errno, libc::EACCES);
        assert!(e.context.starts_with("stat "), "{e}");
        assert!(stat_as(os(&dir.join("private/f")), &nobody(&[]), true).is_err());
        // Root itself can.
        let root = Creds {
            uid: 0,
            gid: 0,
            groups: vec![0],
        };
        let st = stat_as(os(&dir.join("private/f")), &root, true).unwrap();
        assert_eq!(st.st_size, 1);

        // A root 0600 file: stat works, open and access do not.
        let st = stat_as(os(&dir.join("secret")), &who, true).unwrap();
        assert_eq!((st.st_uid, st.st_mode & 0o777), (0, 0o600));
        let e = open_as(os(&dir.join("secret")), libc::O_RDONLY, 0, &who).unwrap_err();
        assert_eq!(
            (e.errno, e.context.starts_with("open ")),
            (libc::EACCES, true)
        );
        let e = access_as(os(&dir.join("secret")), libc::R_OK, &who).unwrap_err();
        assert_eq!(e.errno, libc::EACCES);
        assert_eq!(
            access_as(os(&dir.join("missing")), libc::F_OK, &who)
                .unwrap_err()
                .errno,
            libc::ENOENT
        );

        // Its own file: read and write.
        let fd = open_as(os(&dir.join("mine")), libc::O_RDWR, 0, &who).unwrap();
        let meta = std::fs::File::from(fd).metadata().unwrap();
        assert_eq!(meta.uid(), NOBODY);
        access_as(os(&dir.join("mine")), libc::R_OK | libc::W_OK, &who).unwrap();

        // Supplementary groups count: 0640 root:OTHER_GID.
        assert!(open_as(os(&dir.join("group")), libc::O_RDONLY, 0, &who).is_err());
        let member = nobody(&[NOBODY, OTHER_GID]);
        open_as(os(&dir.join("group")), libc::O_RDONLY, 0, &member).unwrap();
        access_as(os(&dir.join("group")), libc::R_OK, &member).unwrap();
        assert_eq!(
            access_as(os(&dir.join("group")), libc::W_OK, &member)
                .unwrap_err()
                .errno,
            libc::EACCES
        );

        // A file it creates is its own; it is close-on-exec.
        let fd = open_as(
            os(&dir.join("open/new")),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o640,
            &who,
        )
        .unwrap();
        // SAFETY: F_GETFD on our fd.
        let fd_flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(fd_flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        let meta = std::fs::metadata(dir.join("open/new")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));

        // The calling thread and the process are as before.
        assert_eq!(own_fs_ids(), before);
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(status.lines().any(|l| l == "Uid:\t0\t0\t0\t0"), "{status}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_switch_that_does_not_take_fails_closed() {
        if !is_root() {
            eprintln!("skipped: not root");
            return;
        }
        let dir = tree("closed");
        let path = dir.join("mine");
        let target = dir.clone();
        // A thread that dropped all its ids to nobody (raw syscalls: this thread only) can no
        // longer become anyone else: setfsuid silently keeps nobody, which must be an error.
        let result = std::thread::spawn(move || {
            // SAFETY: raw syscalls on this throwaway thread only.
            unsafe {
                assert_eq!(
                    libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<u32>()),
                    0
                );
                assert_eq!(
                    libc::syscall(libc::SYS_setresgid, NOBODY, NOBODY, NOBODY),
                    0
                );
                assert_eq!(
                    libc::syscall(libc::SYS_setresuid, NOBODY, NOBODY, NOBODY),
                    0
                );
            }
            let other = Creds {
                uid: 12345,
                gid: NOBODY,
                groups: vec![],
            };
            let e = stat_as(os(&target), &other, true).unwrap_err();
            // Acting as itself still works.
            open_as(os(&path), libc::O_RDONLY, 0, &nobody(&[])).map(drop)?;
            Ok::<Error, Error>(e)
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(
            (result.errno, result.context.as_str()),
            (libc::EPERM, "setfsuid 12345")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nul_byte_is_einval() {
        let e = stat_as(OsStr::new("a\0b"), &nobody(&[]), true).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
    }
}
