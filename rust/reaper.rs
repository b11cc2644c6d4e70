//! Exit collection and process signalling: wait4 sweeps, subreaper, pidfds, start times.

use crate::error::{errno, Error, Result};
use libc::c_int;
use std::os::fd::{FromRawFd, OwnedFd};

/// One exited child, with its resource usage.
#[derive(Debug, Clone, PartialEq)]
pub struct ExitRecord {
    pub pid: i32,
    /// Exit status when the child exited normally.
    pub code: Option<i32>,
    /// Terminating signal when it was killed.
    pub signal: Option<i32>,
    pub utime: f64,
    pub stime: f64,
    pub maxrss_kib: i64,
    /// Killed by a signal and the kernel wrote a core dump (WCOREDUMP).
    pub core_dumped: bool,
}

fn seconds(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

/// wait4(pid, options) once, retrying EINTR. Ok(None) when nothing (more) has exited.
pub fn wait_pid(pid: i32, options: c_int) -> Result<Option<ExitRecord>> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: rusage is plain old data, zeroed is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to local storage.
        let r = unsafe { libc::wait4(pid, &mut status, options, &mut ru) };
        if r == -1 {
            match errno() {
                libc::EINTR => continue,
                e => return Err(Error::new(e, format!("wait4 {pid}"))),
            }
        }
        if r == 0 {
            return Ok(None);
        }
        let exited = libc::WIFEXITED(status);
        let signaled = libc::WIFSIGNALED(status);
        return Ok(Some(ExitRecord {
            pid: r,
            code: exited.then(|| libc::WEXITSTATUS(status)),
            signal: signaled.then(|| libc::WTERMSIG(status)),
            utime: seconds(ru.ru_utime),
            stime: seconds(ru.ru_stime),
            maxrss_kib: ru.ru_maxrss,
            core_dumped: signaled && libc::WCOREDUMP(status),
        }));
    }
}

/// Collect every exited child without blocking.
pub fn reap() -> Result<Vec<ExitRecord>> {
    let mut out = Vec::new();
    loop {
        match wait_pid(-1, libc::WNOHANG) {
            Ok(Some(rec)) => out.push(rec),
            Ok(None) => return Ok(out),
            Err(e) if e.errno == libc::ECHILD => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}

/// Orphaned descendants are re-parented to us, so their exits reach reap().
pub fn set_child_subreaper() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } == -1 {
        return Err(Error::last("prctl PR_SET_CHILD_SUBREAPER"));
    }
    Ok(())
}

/// A close-on-exec pidfd for `pid`.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: raw syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    if fd == -1 {
        return Err(Error::last(format!("pidfd_open {pid}")));
    }
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as c_int) })
}

/// Signal exactly the process behind `pidfd` (ESRCH once it has exited).
pub fn pidfd_send_signal(pidfd: c_int, sig: c_int) -> Result<()> {
    // SAFETY: raw syscall; a NULL siginfo is allowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if r == -1 {
        return Err(Error::last(format!("pidfd_send_signal {sig}")));
    }
    Ok(())
}

/// Signal a process group. `pgid` must be positive: 0 would mean our own group.
pub fn killpg(pgid: i32, sig: c_int) -> Result<()> {
    if pgid <= 0 {
        return Err(Error::invalid(format!(
            "killpg {pgid}: process group must be positive"
        )));
    }
    // SAFETY: plain syscall.
    if unsafe { libc::kill(-pgid, sig) } == -1 {
        return Err(Error::last(format!("killpg {pgid}")));
    }
    Ok(())
}

/// Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22). ESRCH if gone.
pub fn proc_start_time(pid: i32) -> Result<u64> {
    let context = || format!("proc_start_time {pid}");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ESRCH) => Error::new(libc::ESRCH, context()),
            other => Error::new(other.unwrap_or(libc::EIO), context()),
        }
    })?;
    parse_start_time(&stat)
        .ok_or_else(|| Error::new(libc::EIO, format!("{}: malformed /proc stat", context())))
}

/// comm (field 2) may contain spaces and ')', so count fields after the last ')'.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spawn::tests::children_lock;
    use crate::spawn::{spawn, SpawnSpec};
    use std::os::fd::AsRawFd;

    #[test]
    fn start_time_parsing() {
        let stat = "42 (a b) c)) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 1000 10";
        assert_eq!(parse_start_time(stat), Some(123456));
        assert_eq!(parse_start_time("garbage"), None);
        let me = std::process::id() as i32;
        assert!(proc_start_time(me).unwrap() > 0);
        assert_eq!(proc_start_time(i32::MAX).unwrap_err().errno, libc::ESRCH);
    }

    #[test]
    fn pidfd_kill_then_reap() {
        let _g = children_lock();
        let c = spawn(&SpawnSpec::new("/bin/sleep", &["sleep", "10"])).unwrap();
        assert_eq!(reap().unwrap(), vec![]);
        pidfd_send_signal(c.pidfd.as_raw_fd(), libc::SIGKILL).unwrap();
        // The pidfd becomes readable when the child exits: no polling of /proc.
        let mut pfd = libc::pollfd {
            fd: c.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 5000) }, 1);
        let recs = reap().unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(
            (recs[0].pid, recs[0].code, recs[0].signal),
            (c.pid, None, Some(libc::SIGKILL))
        );
        assert_eq!(
            pidfd_send_signal(c.pidfd.as_raw_fd(), libc::SIGTERM)
                .unwrap_err()
                .errno,
            libc::ESRCH
        );
    }

    #[test]
    fn exit_code_and_rusage() {
        let _g = children_lock();
        let c = spawn(&SpawnSpec::new("/bin/sh", &["sh", "-c", "exit 3"])).unwrap();
        let rec = wait_pid(c.pid, 0).unwrap().unwrap();
        assert_eq!((rec.code, rec.signal), (Some(3), None));
        assert!(rec.maxrss_kib > 0);
    }

    #[test]
    fn core_dumped_is_reported() {
        use crate::preexec::Rlimit;
        use crate::spawn::tests::temp_dir;
        let _g = children_lock();
        let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
        let core = libc::RLIMIT_CORE as c_int;
        for (limit, dumps) in [(0u64, false), (u64::MAX, true)] {
            let dir = temp_dir(&format!("core-{limit}"));
            let mut spec = SpawnSpec::new("/bin/sh", &["sh", "-c", "kill -SEGV $$"]);
            spec.cwd = Some(dir.clone());
            spec.rlimits = vec![Rlimit {
                resource: core,
                soft: limit,
                hard: u64::MAX,
            }];
            let c = spawn(&spec).unwrap();
            let rec = wait_pid(c.pid, 0).unwrap().unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            assert_eq!((rec.code, rec.signal), (None, Some(libc::SIGSEGV)));
            // A pipe in core_pattern (systemd-coredump, apport) decides by itself whether a core is made.
            if !pattern.starts_with('|') {
                assert_eq!(rec.core_dumped, dumps, "RLIMIT_CORE {limit}");
            }
        }
        let c = spawn(&SpawnSpec::new("/bin/sh", &["sh", "-c", "exit 3"])).unwrap();
        assert!(!wait_pid(c.pid, 0).unwrap().unwrap().core_dumped);
    }

    #[test]
    fn killpg_signals_the_session_group() {
        let _g = children_lock();
        let c = spawn(&SpawnSpec::new("/bin/sleep", &["sleep", "10"])).unwrap();
        killpg(c.pid, libc::SIGTERM).unwrap();
        let rec = wait_pid(c.pid, 0).unwrap().unwrap();
        assert_eq!(rec.signal, Some(libc::SIGTERM));
        assert_eq!(killpg(0, libc::SIGTERM).unwrap_err().errno, libc::EINVAL);
    }

    #[test]
    fn subreaper() {
        set_child_subreaper().unwrap();
        let pid = std::process::id() as i32;
        assert!(pidfd_open(pid).is_ok());
    }
}
