//! POSIX message queues: always non-blocking and close-on-exec; waiting is done with poll() on
//! the descriptor, which is also what the daemon registers with its event loop.

use crate::error::{errno, Error, Result};
use libc::{c_int, c_uint};
use std::ffi::CString;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How to open a queue; see [`MessageQueue::open`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub create: bool,
    pub exclusive: bool,
    /// Applied exactly (fchmod after creation), whatever the umask.
    pub mode: u32,
    /// 0 takes the system default.
    pub maxmsg: i64,
    /// 0 takes the system default.
    pub msgsize: i64,
    pub read: bool,
    pub write: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            create: false,
            exclusive: false,
            mode: 0o600,
            maxmsg: 0,
            msgsize: 0,
            read: true,
            write: true,
        }
    }
}

#[derive(Debug)]
pub struct MessageQueue {
    name: String,
    /// -1 once closed; atomic so close() works through a shared reference.
    fd: AtomicI32,
    maxmsg: i64,
    msgsize: i64,
}

fn queue_name(name: &str) -> Result<CString> {
    let valid = name.len() > 1 && name.starts_with('/') && !name[1..].contains('/');
    if !valid {
        return Err(Error::invalid(format!(
            "mq name {name:?}: must be '/' followed by a name without '/'"
        )));
    }
    CString::new(name)
        .map_err(|_| Error::invalid(format!("mq name {name:?}: argument contains a NUL byte")))
}

fn read_limit(file: &str, fallback: i64) -> i64 {
    std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{file}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(fallback)
}

/// mq_open; `attr` only matters with O_CREAT.
fn mq_open(
    cname: &CString,
    oflag: c_int,
    mode: u32,
    attr: Option<&libc::mq_attr>,
) -> Result<c_int> {
    let attr_p = attr.map_or(std::ptr::null(), |a| a as *const libc::mq_attr);
    // SAFETY: valid C string and attr pointer (or NULL); mode is passed as the variadic mode_t.
    let fd = unsafe { libc::mq_open(cname.as_ptr(), oflag, mode as libc::mode_t, attr_p) };
    if fd == -1 {
        return Err(Error::last(format!("mq_open {}", cname.to_string_lossy())));
    }
    Ok(fd)
}

fn close_fd(fd: c_int) -> Result<()> {
    // SAFETY: closing an fd we own.
    if unsafe { libc::mq_close(fd) } == -1 {
        return Err(Error::last("mq_close"));
    }
    Ok(())
}

/// poll timeout in ms for the time left until `deadline` (None: forever), rounded up.
fn poll_ms(deadline: Option<Instant>) -> Option<c_int> {
    match deadline {
        None => Some(-1),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            Some(left.as_micros().div_ceil(1000).min(c_int::MAX as u128) as c_int)
        }
    }
}

impl MessageQueue {
    /// Open (or create) the queue `name` ("/name"), non-blocking and close-on-exec.
    pub fn open(name: &str, opts: &OpenOptions) -> Result<Self> {
        let cname = queue_name(name)?;
        let access = match (opts.read, opts.write) {
            (true, true) => libc::O_RDWR,
            (true, false) => libc::O_RDONLY,
            (false, true) => libc::O_WRONLY,
            (false, false) => {
                return Err(Error::invalid(format!(
                    "mq_open {name}: neither read nor write"
                )))
            }
        };
        let oflag = access | libc::O_NONBLOCK | libc::O_CLOEXEC;
        // SAFETY: mq_attr is plain old data.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        let attr = if opts.maxmsg > 0 || opts.msgsize > 0 {
            attr.mq_maxmsg = if opts.maxmsg > 0 {
                opts.maxmsg
            } else {
                read_limit("msg_default", 10)
            };
            attr.mq_msgsize = if opts.msgsize > 0 {
                opts.msgsize
            } else {
                read_limit("msgsize_default", 8192)
            };
            Some(&attr)
        } else {
            None
        };

        let fd = if !opts.create {
            mq_open(&cname, oflag, 0, None)?
        } else {
            // Create with O_EXCL so we know whether the queue is ours to chmod; without
            // `exclusive`, fall back to opening the existing one (retrying if it vanishes).
            loop {
                match mq_open(
                    &cname,
                    oflag | libc::O_CREAT | libc::O_EXCL,
                    opts.mode,
                    attr,
                ) {
                    Ok(fd) => {
                        let fchmod = fchmod_fd(fd, opts.mode);
                        if let Err(e) = fchmod {
                            let _ = close_fd(fd);
                            let _ = Self::unlink(name);
                            return Err(e);
                        }
                        break fd;
                    }
                    Err(e) if e.errno == libc::EEXIST && !opts.exclusive => {
                        match mq_open(&cname, oflag, 0, None) {
                            Err(e) if e.errno == libc::ENOENT => continue,
                            other => break other?,
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let mut mq = MessageQueue {
            name: name.to_string(),
            fd: AtomicI32::new(fd),
            maxmsg: 0,
            msgsize: 0,
        };
        let mut cur = attr_zero();
        // SAFETY: valid fd and attr pointer.
        if unsafe { libc::mq_getattr(fd, &mut cur) } == -1 {
            return Err(Error::last(format!("mq_getattr {name}")));
        }
        (mq.maxmsg, mq.msgsize) = (cur.mq_maxmsg, cur.mq_msgsize);
        Ok(mq)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn maxmsg(&self) -> i64 {
        self.maxmsg
    }

    pub fn msgsize(&self) -> i64 {
        self.msgsize
    }

    /// The descriptor, or EBADF once closed.
    pub fn fileno(&self) -> Result<c_int> {
        match self.fd.load(Ordering::SeqCst) {
            -1 => Err(Error::new(libc::EBADF, format!("mq {}: closed", self.name))),
            fd => Ok(fd),
        }
    }

    /// (uid, gid, permission bits) of the queue.
    pub fn owner(&self) -> Result<(u32, u32, u32)> {
        // SAFETY: stat is plain old data.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and pointer.
        if unsafe { libc::fstat(self.fileno()?, &mut st) } == -1 {
            return Err(Error::last(format!("fstat mq {}", self.name)));
        }
        Ok((st.st_uid, st.st_gid, st.st_mode & 0o7777))
    }

    pub fn fchown(&self, uid: u32, gid: u32) -> Result<()> {
        // SAFETY: plain syscall on our fd.
        if unsafe { libc::fchown(self.fileno()?, uid, gid) } == -1 {
            return Err(Error::last(format!("fchown mq {} {uid}:{gid}", self.name)));
        }
        Ok(())
    }

    pub fn fchmod(&self, mode: u32) -> Result<()> {
        fchmod_fd(self.fileno()?, mode)
    }

    /// Queue one message; Ok(false) when the queue is full.
    pub fn send(&self, data: &[u8], priority: u32) -> Result<bool> {
        let fd = self.fileno()?;
        loop {
            // SAFETY: valid buffer and length.
            let r =
                unsafe { libc::mq_send(fd, data.as_ptr().cast(), data.len(), priority as c_uint) };
            if r == 0 {
                return Ok(true);
            }
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN => return Ok(false),
                e => return Err(Error::new(e, format!("mq_send {}", self.name))),
            }
        }
    }

    /// One message, or None when the queue is empty.
    pub fn receive(&self) -> Result<Option<Vec<u8>>> {
        let fd = self.fileno()?;
        let mut buf = vec![0u8; self.msgsize.max(1) as usize];
        loop {
            let mut prio: c_uint = 0;
            // SAFETY: buffer of msgsize bytes, as mq_receive requires.
            let n = unsafe { libc::mq_receive(fd, buf.as_mut_ptr().cast(), buf.len(), &mut prio) };
            if n >= 0 {
                buf.truncate(n as usize);
                return Ok(Some(buf));
            }
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN => return Ok(None),
                e => return Err(Error::new(e, format!("mq_receive {}", self.name))),
            }
        }
    }

    /// Wait up to `timeout` for room; false on timeout.
    pub fn send_timeout(&self, data: &[u8], timeout: Duration) -> Result<bool> {
        self.send_until(data, Instant::now().checked_add(timeout), true)
    }

    /// Wait up to `timeout` for a message; None on timeout.
    pub fn receive_timeout(&self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        self.receive_until(Instant::now().checked_add(timeout), true)
    }

    /// send with a deadline (None: forever). With `retry_eintr` false an interrupted wait returns
    /// EINTR, so that a caller (Python) can run its signal handlers and call again.
    pub fn send_until(
        &self,
        data: &[u8],
        deadline: Option<Instant>,
        retry_eintr: bool,
    ) -> Result<bool> {
        loop {
            if self.send(data, 0)? {
                return Ok(true);
            }
            if !self.wait(libc::POLLOUT, deadline, retry_eintr)? {
                return Ok(false);
            }
        }
    }

    /// receive with a deadline (None: forever); `retry_eintr` as for [`Self::send_until`].
    pub fn receive_until(
        &self,
        deadline: Option<Instant>,
        retry_eintr: bool,
    ) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(msg) = self.receive()? {
                return Ok(Some(msg));
            }
            if !self.wait(libc::POLLIN, deadline, retry_eintr)? {
                return Ok(None);
            }
        }
    }

    /// poll until `events` or the deadline; false on timeout.
    fn wait(
        &self,
        events: libc::c_short,
        deadline: Option<Instant>,
        retry_eintr: bool,
    ) -> Result<bool> {
        loop {
            let Some(ms) = poll_ms(deadline) else {
                return Ok(false);
            };
            let mut pfd = libc::pollfd {
                fd: self.fileno()?,
                events,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            match unsafe { libc::poll(&mut pfd, 1, ms) } {
                -1 if errno() == libc::EINTR && retry_eintr => continue,
                -1 => return Err(Error::last(format!("poll mq {}", self.name))),
                0 => continue, // rounding: re-check the deadline
                _ => return Ok(true),
            }
        }
    }

    /// Close the descriptor; later calls are no-ops.
    pub fn close(&self) -> Result<()> {
        match self.fd.swap(-1, Ordering::SeqCst) {
            -1 => Ok(()),
            fd => close_fd(fd),
        }
    }

    /// Remove the queue name; open descriptors keep working.
    pub fn unlink(name: &str) -> Result<()> {
        let cname = queue_name(name)?;
        // SAFETY: valid C string.
        if unsafe { libc::mq_unlink(cname.as_ptr()) } == -1 {
            return Err(Error::last(format!("mq_unlink {name}")));
        }
        Ok(())
    }
}

impl Drop for MessageQueue {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn attr_zero() -> libc::mq_attr {
    // SAFETY: mq_attr is plain old data.
    unsafe { std::mem::zeroed() }
}

fn fchmod_fd(fd: c_int, mode: u32) -> Result<()> {
    // SAFETY: plain syscall.
    if unsafe { libc::fchmod(fd, mode as libc::mode_t) } == -1 {
        return Err(Error::last(format!("fchmod mq {mode:o}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qname(tag: &str) -> String {
        format!("/pmon3-test-{}-{tag}", std::process::id())
    }

    fn create(tag: &str, maxmsg: i64, msgsize: i64, mode: u32) -> MessageQueue {
        let name = qname(tag);
        let _ = MessageQueue::unlink(&name);
        let opts = OpenOptions {
            create: true,
            exclusive: true,
            mode,
            maxmsg,
            msgsize,
            ..Default::default()
        };
        MessageQueue::open(&name, &opts).unwrap()
    }

    #[test]
    fn send_receive_and_sizes() {
        let q = create("basic", 4, 128, 0o600);
        assert_eq!((q.maxmsg(), q.msgsize()), (4, 128));
        assert_eq!(q.receive().unwrap(), None);
        assert!(q.send(b"hello", 0).unwrap());
        assert!(q.send(b"urgent", 5).unwrap());
        assert_eq!(q.receive().unwrap().as_deref(), Some(&b"urgent"[..]));
        assert_eq!(
            q.receive_timeout(Duration::from_secs(1))
                .unwrap()
                .as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(q.send(&[0u8; 129], 0).unwrap_err().errno, libc::EMSGSIZE);
        MessageQueue::unlink(q.name()).unwrap();
    }

    #[test]
    fn defaults_and_reopen() {
        let q = create("defaults", 0, 0, 0o600);
        assert!(q.maxmsg() > 0 && q.msgsize() > 0);
        let opts = OpenOptions {
            read: false,
            ..Default::default()
        };
        let w = MessageQueue::open(q.name(), &opts).unwrap();
        assert!(w.send(b"x", 0).unwrap());
        assert_eq!(w.receive().unwrap_err().errno, libc::EBADF);
        assert_eq!(q.receive().unwrap().as_deref(), Some(&b"x"[..]));
        // create without exclusive opens the existing queue and leaves its mode alone.
        let again = OpenOptions {
            create: true,
            mode: 0o666,
            ..Default::default()
        };
        assert_eq!(
            MessageQueue::open(q.name(), &again)
                .unwrap()
                .owner()
                .unwrap()
                .2,
            0o600
        );
        let excl = OpenOptions {
            create: true,
            exclusive: true,
            ..Default::default()
        };
        assert_eq!(
            MessageQueue::open(q.name(), &excl).unwrap_err().errno,
            libc::EEXIST
        );
        MessageQueue::unlink(q.name()).unwrap();
        assert_eq!(
            MessageQueue::open(q.name(), &OpenOptions::default())
                .unwrap_err()
                .errno,
            libc::ENOENT
        );
    }

    #[test]
    fn receive_timeout_times_out() {
        let q = create("timeout", 2, 64, 0o600);
        let t = Instant::now();
        assert_eq!(q.receive_timeout(Duration::from_millis(100)).unwrap(), None);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_millis(1000),
            "{took:?}"
        );
        MessageQueue::unlink(q.name()).unwrap();
    }

    #[test]
    fn full_queue() {
        let q = create("full", 2, 64, 0o600);
        assert!(q.send(b"1", 0).unwrap());
        assert!(q.send(b"2", 0).unwrap());
        assert!(!q.send(b"3", 0).unwrap());
        assert!(!q.send_timeout(b"3", Duration::from_millis(50)).unwrap());
        assert!(q.receive().unwrap().is_some());
        assert!(q.send_timeout(b"3", Duration::from_millis(50)).unwrap());
        MessageQueue::unlink(q.name()).unwrap();
    }

    #[test]
    fn mode_is_exact_and_owner() {
        // 0o666 survives a 022 umask (a plain mq_open would give 0o644).
        // SAFETY: process umask; only this test creates files with a mode that matters.
        let old = unsafe { libc::umask(0o022) };
        let q = create("mode", 2, 64, 0o666);
        // SAFETY: restore.
        unsafe { libc::umask(old) };
        // SAFETY: getters cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        assert_eq!(q.owner().unwrap(), (uid, gid, 0o666));
        q.fchmod(0o600).unwrap();
        q.fchown(uid, gid).unwrap();
        assert_eq!(q.owner().unwrap(), (uid, gid, 0o600));
        MessageQueue::unlink(q.name()).unwrap();
    }

    #[test]
    fn close_is_idempotent() {
        let q = create("close", 2, 64, 0o600);
        assert!(q.fileno().unwrap() >= 0);
        q.close().unwrap();
        q.close().unwrap();
        assert_eq!(q.fileno().unwrap_err().errno, libc::EBADF);
        assert_eq!(q.send(b"x", 0).unwrap_err().errno, libc::EBADF);
        MessageQueue::unlink(q.name()).unwrap();
    }

    #[test]
    fn bad_names() {
        for name in ["", "/", "noslash", "/a/b", "/a\0b"] {
            assert_eq!(
                MessageQueue::open(name, &OpenOptions::default())
                    .unwrap_err()
                    .errno,
                libc::EINVAL,
                "{name:?}"
            );
        }
    }
}
