//! Plain file syscalls the daemon needs that Python's os module lacks.

use crate::error::{errno, Error, Result};
use libc::c_int;

pub use libc::{FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE};

/// fallocate(2) itself: unlike posix_fallocate, no emulation by writing zeros where the
/// filesystem has no support (EOPNOTSUPP comes back as such). EINTR is retried.
pub fn fallocate(fd: c_int, mode: c_int, offset: i64, length: i64) -> Result<()> {
    loop {
        // SAFETY: raw syscall with integer arguments.
        let r = unsafe { libc::syscall(libc::SYS_fallocate, fd, mode, offset, length) };
        if r == 0 {
            return Ok(());
        }
        match errno() {
            libc::EINTR => continue,
            e => return Err(Error::new(e, format!("fallocate fd {fd} mode {mode:#x}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn keep_size_and_errors() {
        let path = std::env::temp_dir().join(format!("pmon3-falloc-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        // Allocating with KEEP_SIZE leaves the visible size alone; without, the file grows.
        let fd = f.as_raw_fd();
        if let Err(e) = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 8192) {
            assert_eq!(e.errno, libc::EOPNOTSUPP, "{e}");
            return; // a filesystem without fallocate: nothing more to check here
        }
        assert_eq!(f.metadata().unwrap().len(), 0);
        fallocate(fd, 0, 0, 100).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 100);
        let e = fallocate(fd, 0, 0, 0).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        assert_eq!(
            e.message(),
            format!("fallocate fd {fd} mode 0x0: Invalid argument")
        );
        assert_eq!(fallocate(-1, 0, 0, 1).unwrap_err().errno, libc::EBADF);
    }
}
