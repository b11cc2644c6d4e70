//! Listing POSIX message queues without mounting /dev/mqueue where the caller lives.
//!
//! A forked helper (raw clone with CLONE_NEWNS: a copy of our memory in its own mount namespace)
//! makes every mount private, mounts this IPC namespace's mqueue filesystem over [`MOUNT_POINT`],
//! reads the directory with getdents64 and writes the names to a pipe. Its namespace, and the
//! mount, die with it. It is a child of a possibly multi-threaded process, so it only makes raw
//! syscalls on its stack: no allocation, no locks, no panics.
//!
//! The helper's exit signal is 0, not SIGCHLD: a plain wait4(-1) (the daemon's reap()) does not
//! see such a child, so only our wait4(pid, __WCLONE) collects it.

use crate::error::{Error, Result};
use crate::reaper;
use crate::spawn::signals_blocked;
use libc::{c_int, c_long, c_void};
use std::ffi::{CStr, OsString};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

/// Where the helper mounts mqueue in its private namespace: any directory that always exists
/// will do, and procfs is always there where pmon3 runs (it reads /proc/<pid>).
const MOUNT_POINT: &CStr = c"/proc";

/// Pipe records, written by the helper: `N name \0` per queue, then `D` when complete, or
/// `E stage errno(4 bytes, native order)` on failure.
const REC_NAME: u8 = b'N';
const REC_DONE: u8 = b'D';
const REC_ERROR: u8 = b'E';

/// The helper's steps, for error messages.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Private = 1,
    Mount,
    Open,
    Getdents,
    Write,
}

fn step_context(step: u8) -> String {
    let mp = MOUNT_POINT.to_string_lossy();
    match step {
        s if s == Step::Private as u8 => "mq_list mount MS_REC|MS_PRIVATE /".into(),
        s if s == Step::Mount as u8 => format!("mq_list mount mqueue on {mp}"),
        s if s == Step::Open as u8 => format!("mq_list open {mp}"),
        s if s == Step::Getdents as u8 => "mq_list getdents64".into(),
        s if s == Step::Write as u8 => "mq_list write to the pipe".into(),
        s => format!("mq_list step {s}"),
    }
}

/// Names of every message queue of our IPC namespace, without the leading '/'. Needs
/// CAP_SYS_ADMIN (EPERM otherwise): for the new mount namespace and the mount.
pub fn list() -> Result<Vec<OsString>> {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 into a local array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(Error::last("mq_list pipe2"));
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let wfd = wr.as_raw_fd();
    // Signals stay blocked in the helper: no handler of ours (Python's writes to the event
    // loop's wakeup fd) runs there.
    let r = signals_blocked(|| {
        // SAFETY: a fork-like clone (no CLONE_VM, no new stack): the child runs on a copy of
        // this stack and never returns from `helper`.
        let r = unsafe { clone_newns() };
        if r == Ok(0) {
            // SAFETY: we are the helper; wfd is the inherited write end.
            unsafe { helper(wfd) }
        }
        r
    });
    drop(wr);
    let pid = match r {
        Ok(pid) => pid as i32,
        Err(e) => return Err(Error::new(e, "mq_list clone CLONE_NEWNS")),
    };
    let mut data = Vec::new();
    let read = std::fs::File::from(rd).read_to_end(&mut data);
    // Collect the helper whatever the pipe said; ECHILD only if someone waited with __WALL.
    let status = reaper::wait_pid(pid, libc::__WCLONE);
    read.map_err(|e| Error::new(e.raw_os_error().unwrap_or(libc::EIO), "mq_list read"))?;
    parse(&data).map_err(|e| match (e, status) {
        (Some(e), _) => e,
        (None, Ok(Some(rec))) => Error::new(
            libc::EIO,
            format!(
                "mq_list helper {pid} ended early (exit {:?}, signal {:?})",
                rec.code, rec.signal
            ),
        ),
        (None, Ok(None)) | (None, Err(_)) => {
            Error::new(libc::EIO, format!("mq_list helper {pid} ended early"))
        }
    })
}

/// The helper's records -> names; Err(Some) for a reported failure, Err(None) when the stream
/// ends without `D` (the helper died).
fn parse(mut data: &[u8]) -> std::result::Result<Vec<OsString>, Option<Error>> {
    let mut names = Vec::new();
    while let Some((&tag, rest)) = data.split_first() {
        match tag {
            REC_NAME => {
                let end = rest.iter().position(|&b| b == 0).ok_or(None)?;
                names.push(OsString::from_vec(rest[..end].to_vec()));
                data = &rest[end + 1..];
            }
            REC_DONE if rest.is_empty() => return Ok(names),
            REC_ERROR if rest.len() == 5 => {
                let errno = c_int::from_ne_bytes([rest[1], rest[2], rest[3], rest[4]]);
                return Err(Some(Error::new(errno, step_context(rest[0]))));
            }
            _ => {
                return Err(Some(Error::new(
                    libc::EIO,
                    "mq_list: malformed reply from the helper",
                )))
            }
        }
    }
    Err(None)
}

/// clone(CLONE_NEWNS) with exit signal 0 and no new stack: fork semantics in a new mount
/// namespace. Ok(0) in the child, Ok(pid) in the parent.
///
/// # Safety
/// The child shares nothing but descriptors and must only make async-signal-safe calls.
unsafe fn clone_newns() -> std::result::Result<c_long, c_int> {
    // x86_64 and aarch64 order the remaining arguments differently; all are 0 here.
    sys(libc::syscall(
        libc::SYS_clone,
        libc::CLONE_NEWNS as libc::c_ulong,
        0usize,
        0usize,
        0usize,
        0usize,
    ))
}

/// A raw syscall's result, errno on failure (read right away, before anything can change it).
unsafe fn sys(r: c_long) -> std::result::Result<c_long, c_int> {
    if r == -1 {
        Err(*libc::__errno_location())
    } else {
        Ok(r)
    }
}

/// The helper: raw syscalls on its own stack only, then _exit.
unsafe fn helper(out: c_int) -> ! {
    let code = match list_into(out) {
        Ok(()) => 0,
        Err((step, errno)) => {
            let e = errno.to_ne_bytes();
            let rec = [REC_ERROR, step as u8, e[0], e[1], e[2], e[3]];
            // Nothing to do if even this fails: the parent sees no `D` and reports it.
            let _ = write_all(out, rec.as_ptr(), rec.len());
            1
        }
    };
    // exit_group does not return; loop rather than ever fall into the parent's code.
    loop {
        libc::syscall(libc::SYS_exit_group, code);
    }
}

/// mount(2); null arguments as the call allows.
unsafe fn mount(
    src: *const libc::c_char,
    target: *const libc::c_char,
    fstype: *const libc::c_char,
    flags: libc::c_ulong,
) -> std::result::Result<c_long, c_int> {
    let data = std::ptr::null::<c_void>();
    sys(libc::syscall(
        libc::SYS_mount,
        src,
        target,
        fstype,
        flags,
        data,
    ))
}

unsafe fn list_into(out: c_int) -> std::result::Result<(), (Step, c_int)> {
    let null = std::ptr::null();
    // Private first: mounts copied into a new namespace stay peers of shared originals, and the
    // mqueue mount below would propagate back to the caller's namespace.
    let flags = libc::MS_REC | libc::MS_PRIVATE;
    mount(null, c"/".as_ptr(), null, flags).map_err(|e| (Step::Private, e))?;
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let mqueue = c"mqueue".as_ptr();
    mount(mqueue, MOUNT_POINT.as_ptr(), mqueue, flags).map_err(|e| (Step::Mount, e))?;
    let dir = sys(libc::syscall(
        libc::SYS_openat,
        libc::AT_FDCWD,
        MOUNT_POINT.as_ptr(),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    ))
    .map_err(|e| (Step::Open, e))?;

    let mut ents = [0u8; 4096];
    let mut buf = Buf {
        data: [0u8; 4096],
        len: 0,
        fd: out,
    };
    loop {
        let n = sys(libc::syscall(
            libc::SYS_getdents64,
            dir,
            ents.as_mut_ptr(),
            ents.len(),
        ))
        .map_err(|e| (Step::Getdents, e))? as usize;
        if n == 0 {
            break;
        }
        // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[].
        let mut pos = 0usize;
        while pos + 19 < n && pos + 19 < ents.len() {
            let base = ents.as_ptr().add(pos);
            let reclen = u16::from_ne_bytes([*base.add(16), *base.add(17)]) as usize;
            if reclen == 0 {
                break;
            }
            let name = base.add(19);
            // NUL-terminated inside the record (names are at most 255 bytes).
            let room = reclen.saturating_sub(19).min(256);
            let mut len = 0;
            while len < room && *name.add(len) != 0 {
                len += 1;
            }
            let dot = len == 1 && *name == b'.';
            let dotdot = len == 2 && *name == b'.' && *name.add(1) == b'.';
            if !dot && !dotdot {
                buf.push(REC_NAME, name, len)?;
            }
            pos += reclen;
        }
    }
    buf.push(REC_DONE, std::ptr::null(), 0)?;
    buf.flush()
}

/// Records gathered on the helper's stack, written out in pipe-sized pieces.
struct Buf {
    data: [u8; 4096],
    len: usize,
    fd: c_int,
}

impl Buf {
    /// `tag`, then `len` bytes at `s` and a NUL when `len > 0` (a name is at most 255 bytes).
    unsafe fn push(
        &mut self,
        tag: u8,
        s: *const u8,
        len: usize,
    ) -> std::result::Result<(), (Step, c_int)> {
        let need = 2 + len;
        if self.len + need > self.data.len() {
            self.flush()?;
        }
        if need > self.data.len() {
            return Err((Step::Write, libc::ENAMETOOLONG));
        }
        let dst = self.data.as_mut_ptr().add(self.len);
        *dst = tag;
        if len > 0 {
            std::ptr::copy_nonoverlapping(s, dst.add(1), len);
            *dst.add(1 + len) = 0;
            self.len += 2 + len;
        } else {
            self.len += 1;
        }
        Ok(())
    }

    unsafe fn flush(&mut self) -> std::result::Result<(), (Step, c_int)> {
        write_all(self.fd, self.data.as_ptr(), self.len).map_err(|e| (Step::Write, e))?;
        self.len = 0;
        Ok(())
    }
}

/// write(2) until all of `len` bytes at `p` are out (a pipe write may be partial).
unsafe fn write_all(fd: c_int, mut p: *const u8, mut len: usize) -> std::result::Result<(), c_int> {
    while len > 0 {
        match sys(libc::syscall(libc::SYS_write, fd, p, len)) {
            Ok(n) => {
                let n = (n as usize).min(len);
                p = p.add(n);
                len -= n;
            }
            Err(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mq::{MessageQueue, OpenOptions};

    fn is_root() -> bool {
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    /// Unlinks its queues when dropped, so a failing test leaves none behind.
    struct Unlink(Vec<String>);

    impl Drop for Unlink {
        fn drop(&mut self) {
            for n in &self.0 {
                let _ = MessageQueue::unlink(n);
            }
        }
    }

    fn names() -> Vec<String> {
        list()
            .unwrap()
            .into_iter()
            .map(|n| n.into_string().unwrap())
            .collect()
    }

    #[test]
    fn a_new_queue_is_listed_until_unlinked() {
        if !is_root() {
            eprintln!("skipped: not root");
            return;
        }
        let name = format!("/pmon3-test-{}-mqlist", std::process::id());
        let cleanup = Unlink(vec![name.clone()]);
        drop(Unlink(vec![name.clone()])); // a leftover of an earlier run
        let mountinfo = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let before = mountinfo();
        let opts = OpenOptions {
            create: true,
            exclusive: true,
            ..Default::default()
        };
        let q = MessageQueue::open(&name, &opts).unwrap();
        let listed = names();
        MessageQueue::unlink(&name).unwrap();
        drop((q, cleanup));
        assert!(listed.contains(&name[1..].to_string()), "{listed:?}");
        assert!(!listed
            .iter()
            .any(|n| n == "." || n == ".." || n.starts_with('/')));
        assert!(!names().contains(&name[1..].to_string()));
        // Nothing was mounted (or propagated) where we live.
        assert_eq!(mountinfo(), before);
    }

    #[test]
    fn many_long_names_cross_buffer_and_pipe_sizes() {
        if !is_root() {
            eprintln!("skipped: not root");
            return;
        }
        // 40 names of 250 bytes: several 4 KiB dirent and output buffers.
        let pid = std::process::id();
        let names_made: Vec<String> = (0..40)
            .map(|i| {
                let stem = format!("pmon3-test-{pid}-long-{i:02}-");
                format!("/{stem}{}", "x".repeat(250 - stem.len()))
            })
            .collect();
        let cleanup = Unlink(names_made.clone());
        let opts = OpenOptions {
            create: true,
            maxmsg: 1,
            msgsize: 8,
            ..Default::default()
        };
        let queues: Vec<MessageQueue> = names_made
            .iter()
            .map(|n| MessageQueue::open(n, &opts).unwrap())
            .collect();
        let listed = names();
        drop((queues, cleanup));
        for n in &names_made {
            assert!(listed.contains(&n[1..].to_string()), "{n} missing");
        }
    }

    #[test]
    fn without_cap_sys_admin_it_is_eperm() {
        // One thread drops to nobody with raw setresuid (per thread, unlike glibc's setuid),
        // tries, and ends: the rest of the process keeps its credentials.
        let r = std::thread::spawn(|| {
            // SAFETY: raw setresuid of this thread only; it exits right after.
            let r = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
            if r != 0 {
                return None;
            }
            Some(list())
        })
        .join()
        .unwrap();
        let Some(r) = r else {
            eprintln!("skipped: cannot switch to uid 65534");
            return;
        };
        let e = r.unwrap_err();
        assert_eq!(
            (e.errno, e.context.as_str()),
            (libc::EPERM, "mq_list clone CLONE_NEWNS")
        );
    }

    #[test]
    fn parse_records() {
        let ok = b"Na\0Nb c\0D";
        assert_eq!(parse(ok).unwrap(), ["a", "b c"]);
        assert_eq!(parse(b"D").unwrap(), Vec::<OsString>::new());
        let mut err = vec![b'N', b'a', 0, REC_ERROR, Step::Mount as u8];
        err.extend_from_slice(&libc::EPERM.to_ne_bytes());
        let e = parse(&err).unwrap_err().unwrap();
        assert_eq!(
            e.message(),
            "mq_list mount mqueue on /proc: Operation not permitted"
        );
        assert!(parse(b"Na\0").unwrap_err().is_none());
        assert!(parse(b"Na").unwrap_err().is_none());
        assert_eq!(parse(b"X").unwrap_err().unwrap().errno, libc::EIO);
    }
}
