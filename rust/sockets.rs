//! Listening sockets that pmond holds for its processes: binding a unix socket with a user's rights
//! (the socket file is created as that user, in a directory that user may write), and taking a
//! descriptor back from a running process after a pmond restart (pidfd_getfd).

use crate::error::{errno, Error, Result};
use crate::fsas::{with_creds, Creds};
use libc::c_int;
use std::ffi::OsStr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

fn sockaddr_un(path: &OsStr) -> Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes();
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(Error::new(
            libc::ENAMETOOLONG,
            format!(
                "unix socket path {:?}: empty, too long or has a NUL byte",
                path
            ),
        ));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// bind(2) `fd` (an AF_UNIX socket of ours) to `path` as `creds`, then chmod the new socket file to
/// `mode` (umask is process-wide, so the mode is set explicitly), still as `creds`. With `creds`
/// None it is done with our own rights.
pub fn bind_unix(fd: c_int, path: &OsStr, mode: Option<u32>, creds: Option<&Creds>) -> Result<()> {
    let (addr, len) = sockaddr_un(path)?;
    let cpath = std::ffi::CString::new(path.as_bytes())
        .map_err(|_| Error::invalid("unix socket path has a NUL byte"))?;
    let op = || {
        // SAFETY: a valid sockaddr_un of `len` bytes; fd is the caller's socket.
        let r = unsafe { libc::bind(fd, std::ptr::addr_of!(addr).cast(), len) };
        if r == -1 {
            return Err(Error::new(
                errno(),
                format!("bind {}", path.to_string_lossy()),
            ));
        }
        if let Some(mode) = mode {
            // SAFETY: valid C string; the file was just created by this very bind.
            let r = unsafe { libc::chmod(cpath.as_ptr(), mode as libc::mode_t) };
            if r == -1 {
                return Err(Error::new(
                    errno(),
                    format!("chmod {}", path.to_string_lossy()),
                ));
            }
        }
        Ok(())
    };
    match creds {
        Some(c) => with_creds(c, op),
        None => op(),
    }
}

/// pidfd_getfd(2): a copy (close-on-exec) of descriptor `target` of the process behind `pidfd`.
pub fn pidfd_getfd(pidfd: c_int, target: c_int) -> Result<OwnedFd> {
    // SAFETY: integer arguments; flags must be 0.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) };
    if r == -1 {
        return Err(Error::new(errno(), format!("pidfd_getfd {target}")));
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as c_int) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn unix_socket() -> OwnedFd {
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        // SAFETY: just created.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    #[test]
    fn binds_with_a_mode_and_as_another_user() {
        let dir = std::env::temp_dir().join(format!("pmon3-sock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.sock");
        let s = unix_socket();
        bind_unix(s.as_raw_fd(), path.as_os_str(), Some(0o640), None).unwrap();
        let st = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(st.permissions().mode() & 0o777, 0o640);
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            // nobody cannot create a file in a root-owned 0755 directory
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            let nobody = Creds {
                uid: 65534,
                gid: 65534,
                groups: vec![],
            };
            let err = bind_unix(
                unix_socket().as_raw_fd(),
                dir.join("b.sock").as_os_str(),
                None,
                Some(&nobody),
            )
            .unwrap_err();
            assert_eq!(err.errno, libc::EACCES);
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            bind_unix(
                unix_socket().as_raw_fd(),
                dir.join("c.sock").as_os_str(),
                None,
                Some(&nobody),
            )
            .unwrap();
            assert_eq!(std::fs::metadata(dir.join("c.sock")).unwrap().uid(), 65534);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn too_long_a_path_is_refused() {
        let long = "x".repeat(200);
        let err = bind_unix(unix_socket().as_raw_fd(), OsStr::new(&long), None, None).unwrap_err();
        assert_eq!(err.errno, libc::ENAMETOOLONG);
    }

    #[test]
    fn getfd_copies_our_own_descriptor() {
        let pidfd = crate::reaper::pidfd_open(std::process::id() as i32).unwrap();
        let s = unix_socket();
        let copy = pidfd_getfd(pidfd.as_raw_fd(), s.as_raw_fd()).unwrap();
        // SAFETY: stat buffers are plain old data.
        let (mut a, mut b): (libc::stat, libc::stat) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        // SAFETY: valid descriptors and out pointers.
        unsafe {
            libc::fstat(s.as_raw_fd(), &mut a);
            libc::fstat(copy.as_raw_fd(), &mut b);
        }
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
        assert_eq!(
            pidfd_getfd(pidfd.as_raw_fd(), 100_000).unwrap_err().errno,
            libc::EBADF
        );
    }
}
