//! inotify: a non-blocking, close-on-exec descriptor for the daemon's event loop (`fileno()` for
//! `loop.add_reader`), and `read()` that returns every pending event without waiting.

use crate::error::{errno, Error, Result};
use libc::c_int;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicI32, Ordering};

pub use libc::{
    IN_ACCESS, IN_ATTRIB, IN_CLOSE_NOWRITE, IN_CLOSE_WRITE, IN_CREATE, IN_DELETE, IN_DELETE_SELF,
    IN_DONT_FOLLOW, IN_EXCL_UNLINK, IN_IGNORED, IN_ISDIR, IN_MASK_ADD, IN_MODIFY, IN_MOVED_FROM,
    IN_MOVED_TO, IN_MOVE_SELF, IN_ONESHOT, IN_ONLYDIR, IN_OPEN, IN_Q_OVERFLOW, IN_UNMOUNT,
};

/// Size of struct inotify_event without its name.
const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
/// Room for many events per read (each at most HEADER + NAME_MAX + 1).
const BUFFER: usize = 64 * 1024;
/// Reads per `read()` call: a flood cannot keep one call busy; the rest stays readable.
const MAX_READS: usize = 16;

/// One event: watch descriptor, mask, cookie (pairs IN_MOVED_FROM with IN_MOVED_TO), and the
/// name of the entry inside a watched directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub wd: i32,
    pub mask: u32,
    pub cookie: u32,
    pub name: Option<OsString>,
}

#[derive(Debug)]
pub struct Inotify {
    /// -1 once closed; atomic so close() works through a shared reference.
    fd: AtomicI32,
}

impl Inotify {
    pub fn new() -> Result<Self> {
        // SAFETY: plain syscall with flags.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd == -1 {
            return Err(Error::last("inotify_init1"));
        }
        Ok(Inotify {
            fd: AtomicI32::new(fd),
        })
    }

    /// The descriptor, or EBADF once closed.
    pub fn fileno(&self) -> Result<c_int> {
        match self.fd.load(Ordering::SeqCst) {
            -1 => Err(Error::new(libc::EBADF, "inotify: closed")),
            fd => Ok(fd),
        }
    }

    /// Watch `path` for `mask`; the same path again returns the same wd (the mask replaced, or
    /// added to with IN_MASK_ADD).
    pub fn add_watch(&self, path: &OsStr, mask: u32) -> Result<i32> {
        let what = || format!("inotify_add_watch {}", path.to_string_lossy());
        let c = CString::new(path.as_bytes())
            .map_err(|_| Error::invalid(format!("{}: argument contains a NUL byte", what())))?;
        // SAFETY: valid fd and C string.
        let wd = unsafe { libc::inotify_add_watch(self.fileno()?, c.as_ptr(), mask) };
        if wd == -1 {
            return Err(Error::last(what()));
        }
        Ok(wd)
    }

    pub fn rm_watch(&self, wd: i32) -> Result<()> {
        // SAFETY: plain syscall.
        if unsafe { libc::inotify_rm_watch(self.fileno()?, wd) } == -1 {
            return Err(Error::last(format!("inotify_rm_watch {wd}")));
        }
        Ok(())
    }

    /// Every pending event (up to MAX_READS buffers), or nothing; never blocks.
    pub fn read(&self) -> Result<Vec<Event>> {
        let fd = self.fileno()?;
        let mut buf = vec![0u8; BUFFER];
        let mut events = Vec::new();
        let mut reads = 0;
        while reads < MAX_READS {
            // SAFETY: reading into our buffer of BUFFER bytes.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n == -1 {
                match errno() {
                    libc::EINTR => continue,
                    libc::EAGAIN => break,
                    e => return Err(Error::new(e, "inotify read")),
                }
            }
            reads += 1;
            parse(&buf[..n as usize], &mut events);
        }
        Ok(events)
    }

    /// Close the descriptor (its watches go with it); later calls are no-ops.
    pub fn close(&self) -> Result<()> {
        match self.fd.swap(-1, Ordering::SeqCst) {
            -1 => Ok(()),
            // SAFETY: closing the fd we owned.
            fd if unsafe { libc::close(fd) } == -1 => Err(Error::last("inotify close")),
            _ => Ok(()),
        }
    }
}

impl Drop for Inotify {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Events of one read: the kernel only returns whole events. The name is NUL-padded.
fn parse(mut data: &[u8], out: &mut Vec<Event>) {
    while data.len() >= HEADER {
        // SAFETY: HEADER bytes are there; read_unaligned since a Vec<u8> is only byte-aligned.
        let ev: libc::inotify_event = unsafe { std::ptr::read_unaligned(data.as_ptr().cast()) };
        let end = HEADER.saturating_add(ev.len as usize).min(data.len());
        let raw = &data[HEADER..end];
        let name = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
        out.push(Event {
            wd: ev.wd,
            mask: ev.mask,
            cookie: ev.cookie,
            name: (!name.is_empty()).then(|| OsString::from_vec(name.to_vec())),
        });
        data = &data[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pmon3-inotify-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn file_and_directory_events() {
        let dir = temp_dir("events");
        let file = dir.join("a.log");
        std::fs::write(&file, "").unwrap();
        let ino = Inotify::new().unwrap();
        assert_eq!(ino.read().unwrap(), []);
        let wf = ino
            .add_watch(file.as_os_str(), IN_MODIFY | IN_CLOSE_WRITE)
            .unwrap();
        let wd = ino
            .add_watch(dir.as_os_str(), IN_CREATE | IN_MOVED_TO | IN_DELETE)
            .unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(b"x").unwrap();
        drop(f);
        std::fs::write(dir.join("b"), "").unwrap();
        std::fs::rename(dir.join("b"), dir.join("c")).unwrap();
        std::fs::remove_file(dir.join("c")).unwrap();
        let got: Vec<(i32, u32, Option<String>)> = ino
            .read()
            .unwrap()
            .into_iter()
            .map(|e| {
                (
                    e.wd,
                    e.mask,
                    e.name.map(|n| n.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (wf, IN_MODIFY, None),
                (wf, IN_CLOSE_WRITE, None),
                (wd, IN_CREATE, Some("b".into())),
                (wd, IN_MOVED_TO, Some("c".into())),
                (wd, IN_DELETE, Some("c".into())),
            ]
        );
        assert_eq!(ino.read().unwrap(), []);
        ino.rm_watch(wf).unwrap();
        let ev = ino.read().unwrap();
        assert_eq!((ev[0].wd, ev[0].mask), (wf, IN_IGNORED));
        assert_eq!(ino.rm_watch(wf).unwrap_err().errno, libc::EINVAL);
        ino.close().unwrap();
        ino.close().unwrap();
        assert_eq!(ino.read().unwrap_err().errno, libc::EBADF);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn descriptor_is_nonblocking_and_cloexec() {
        let ino = Inotify::new().unwrap();
        let fd = ino.fileno().unwrap();
        // SAFETY: fcntl queries on our fd.
        let (fl, fdfl) = unsafe {
            (
                libc::fcntl(fd, libc::F_GETFL),
                libc::fcntl(fd, libc::F_GETFD),
            )
        };
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        assert_ne!(fdfl & libc::FD_CLOEXEC, 0);
        let e = ino
            .add_watch(OsStr::new("/nonexistent-pmon3"), IN_MODIFY)
            .unwrap_err();
        assert_eq!(
            (e.errno, e.context.as_str()),
            (libc::ENOENT, "inotify_add_watch /nonexistent-pmon3")
        );
    }

    #[test]
    fn parse_handles_padding_and_a_truncated_tail() {
        let mut data = Vec::new();
        for (wd, name) in [(1, &b""[..]), (2, &b"name"[..])] {
            let len = if name.is_empty() { 0 } else { 16 };
            data.extend_from_slice(&i32::to_ne_bytes(wd));
            data.extend_from_slice(&IN_CREATE.to_ne_bytes());
            data.extend_from_slice(&7u32.to_ne_bytes());
            data.extend_from_slice(&(len as u32).to_ne_bytes());
            let mut padded = name.to_vec();
            padded.resize(len, 0);
            data.extend_from_slice(&padded);
        }
        data.extend_from_slice(&[1, 2, 3]); // less than a header: ignored
        let mut out = Vec::new();
        parse(&data, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].wd, out[0].cookie, out[0].name.clone()),
            (1, 7, None)
        );
        assert_eq!(out[1].name.as_deref(), Some(OsStr::new("name")));
    }
}
