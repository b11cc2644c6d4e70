//! SpawnSpec -> child process, vfork-style.
//!
//! Everything the child needs (C strings, pointer arrays, group list) is built here, before the
//! clone. The child runs [`preexec::child_main`] on its own stack in our memory
//! (CLONE_VM | CLONE_VFORK, as glibc's posix_spawn): no page tables are copied, and the parent
//! resumes once the child has exec'd or exited. A failure is reported through the shared
//! [`ChildCtx`] and the failed child is reaped here, so the caller never sees it.

use crate::error::{errno, Error, Result};
use crate::preexec::{child_main, ChildCtx, Stage};
use crate::reaper;
use libc::{c_char, c_int, c_void};
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};

/// Stack for the cloned child: it only runs `child_main` and a few syscalls.
const CHILD_STACK: usize = 64 * 1024;

/// What to run and how. `file` is executed as is (no PATH search); `env` is the whole environment.
#[derive(Debug, Clone, Default)]
pub struct SpawnSpec {
    pub file: OsString,
    pub argv: Vec<OsString>,
    /// "KEY=VALUE" entries.
    pub env: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Supplementary groups. None with `uid` set while we are root: all supplementary groups are
    /// dropped, so the child never keeps root's groups.
    pub groups: Option<Vec<u32>>,
    /// Appended to (created 0640 as the target user); None means /dev/null.
    pub log_path: Option<PathBuf>,
    /// A descriptor of the caller's (>= 3) to use as stdout/stderr instead of `log_path`.
    pub log_fd: Option<i32>,
    pub umask: Option<u32>,
}

impl SpawnSpec {
    pub fn new<S: AsRef<OsStr>>(file: impl AsRef<OsStr>, argv: &[S]) -> Self {
        SpawnSpec {
            file: file.as_ref().to_owned(),
            argv: argv.iter().map(|a| a.as_ref().to_owned()).collect(),
            ..Default::default()
        }
    }
}

/// A started child: its pid and a close-on-exec pidfd owned by the caller.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

fn cstring(what: &str, s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| Error::invalid(format!("{what}: argument contains a NUL byte")))
}

fn cstrings(what: &str, items: &[OsString]) -> Result<Vec<CString>> {
    items.iter().map(|s| cstring(what, s)).collect()
}

/// NULL-terminated pointer array over `strings` (which must outlive it).
fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// Start the process described by `spec`.
pub fn spawn(spec: &SpawnSpec) -> Result<Spawned> {
    let file = cstring("file", &spec.file)?;
    let argv = cstrings("argv", &spec.argv)?;
    let env = cstrings("env", &spec.env)?;
    let cwd = spec
        .cwd
        .as_ref()
        .map(|p| cstring("cwd", p.as_os_str()))
        .transpose()?;
    let log = spec
        .log_path
        .as_ref()
        .map(|p| cstring("log_path", p.as_os_str()))
        .transpose()?;
    if spec.log_fd.is_some_and(|fd| fd < 3) || (spec.log_fd.is_some() && spec.log_path.is_some()) {
        return Err(Error::new(
            libc::EINVAL,
            "log_fd must be >= 3 and excludes log_path",
        ));
    }
    let argv_p = pointers(&argv);
    let env_p = pointers(&env);
    let groups: Vec<libc::gid_t> = spec.groups.clone().unwrap_or_default();
    // SAFETY: geteuid cannot fail.
    let set_groups =
        spec.groups.is_some() || (spec.uid.is_some() && unsafe { libc::geteuid() } == 0);

    let ctx = ChildCtx {
        file: file.as_ptr(),
        argv: argv_p.as_ptr(),
        envp: env_p.as_ptr(),
        cwd: cwd.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
        log: log.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
        log_fd: spec.log_fd.unwrap_or(-1),
        set_groups,
        groups: groups.as_ptr(),
        ngroups: groups.len(),
        gid: spec.gid,
        uid: spec.uid,
        umask: spec.umask,
        stage: AtomicI32::new(Stage::Ok as i32),
        errno: AtomicI32::new(0),
    };

    let (pid, pidfd) = clone_child(&ctx)?;
    let stage = Stage::from_i32(ctx.stage.load(Ordering::SeqCst));
    if stage != Stage::Ok {
        drop(pidfd);
        // The child has exited (CLONE_VFORK): collect it so no zombie is left. ECHILD only if a
        // concurrent wait4(-1) got it first, which is fine.
        let _ = reaper::wait_pid(pid, 0);
        return Err(Error::new(
            ctx.errno.load(Ordering::SeqCst),
            failure_context(stage, spec),
        ));
    }
    Ok(Spawned { pid, pidfd })
}

/// "<stage> <what>" for the error message, e.g. "exec /bin/nope".
fn failure_context(stage: Stage, spec: &SpawnSpec) -> String {
    let show = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    match stage {
        Stage::Ok | Stage::Exec => format!("exec {}", PathBuf::from(&spec.file).display()),
        Stage::Sigmask => "sigprocmask".into(),
        Stage::Setsid => "setsid".into(),
        Stage::Setgroups => format!("setgroups {:?}", spec.groups.as_deref().unwrap_or(&[])),
        Stage::Setgid => format!("setgid {}", spec.gid.unwrap_or_default()),
        Stage::Setuid => format!("setuid {}", spec.uid.unwrap_or_default()),
        Stage::Chdir => format!("chdir {}", show(&spec.cwd)),
        Stage::OpenLog if spec.log_path.is_none() => "open /dev/null".into(),
        Stage::OpenLog => format!("open log {}", show(&spec.log_path)),
        Stage::OpenNull => "open /dev/null".into(),
        Stage::Dup => "dup2".into(),
        Stage::CloseFds => "close_range".into(),
    }
}

/// clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) with all signals blocked around it, so that no
/// signal handler of ours runs in the child. CLONE_PIDFD gives the pidfd atomically, before any
/// other thread could reap the child and let its pid be reused.
fn clone_child(ctx: &ChildCtx) -> Result<(i32, OwnedFd)> {
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // Stacks grow down: pass the 16-byte aligned top.
    let top = ((stack.as_mut_ptr() as usize + CHILD_STACK) & !15) as *mut c_void;
    let arg = ctx as *const ChildCtx as *mut c_void;
    let mut pidfd: c_int = -1;
    // SAFETY: plain libc calls on valid local storage. The child only runs child_main, which
    // reads ctx and writes its atomics; ctx and the stack outlive the call since CLONE_VFORK
    // suspends us until the child has exec'd or exited.
    let (pid, err) = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
        let mut pid = libc::clone(
            child_main,
            top,
            flags | libc::CLONE_PIDFD,
            arg,
            &mut pidfd as *mut c_int,
        );
        let mut err = errno();
        if pid == -1 && err == libc::EINVAL {
            // Kernel < 5.2 has no CLONE_PIDFD: fall back to pidfd_open below.
            pid = libc::clone(child_main, top, flags, arg);
            err = errno();
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut());
        (pid, err)
    };
    if pid == -1 {
        return Err(Error::new(err, "clone"));
    }
    if pidfd >= 0 {
        // SAFETY: the kernel just gave us this fd.
        return Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }));
    }
    match reaper::pidfd_open(pid) {
        Ok(fd) => Ok((pid, fd)),
        Err(e) => {
            // Without a pidfd the caller cannot own the child: do not leave it running.
            // SAFETY: pid is our unreaped child, so it cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = reaper::wait_pid(pid, 0);
            Err(e)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Mutex, MutexGuard};
    use std::time::{Duration, Instant};

    /// Tests that create or reap children hold this: reap() collects any child of the process.
    static CHILDREN: Mutex<()> = Mutex::new(());

    pub(crate) fn children_lock() -> MutexGuard<'static, ()> {
        CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pmon3-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Spawn, wait for the exit and return (exit record, log content).
    fn run(mut spec: SpawnSpec, name: &str) -> (reaper::ExitRecord, String) {
        let log = temp_dir(name).join("out.log");
        spec.log_path = Some(log.clone());
        let child = spawn(&spec).unwrap();
        let rec = reaper::wait_pid(child.pid, 0).unwrap().unwrap();
        (rec, std::fs::read_to_string(&log).unwrap())
    }

    #[test]
    fn log_fd_takes_the_place_of_a_log_file() {
        let _guard = children_lock();
        let mut fds = [0; 2];
        // SAFETY: plain pipe2 into a local array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let mut spec = SpawnSpec::new("/bin/sh", &["sh", "-c", "echo out; echo err >&2"]);
        spec.log_fd = Some(fds[1]);
        let child = spawn(&spec).unwrap();
        // SAFETY: our own write end; the child has its copies.
        unsafe { libc::close(fds[1]) };
        reaper::wait_pid(child.pid, 0).unwrap();
        let mut buf = [0u8; 64];
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        unsafe { libc::close(fds[0]) };
        assert_eq!(&buf[..n as usize], b"out\nerr\n");
        spec.log_fd = Some(1);
        assert_eq!(spawn(&spec).unwrap_err().errno, libc::EINVAL);
    }

    fn no_children_left() -> bool {
        // SAFETY: plain wait4 on local storage.
        let r = unsafe { libc::wait4(-1, ptr::null_mut(), libc::WNOHANG, ptr::null_mut()) };
        r == 0 || (r == -1 && errno() == libc::ECHILD)
    }

    #[test]
    fn echo_to_log() {
        let _g = children_lock();
        let (rec, out) = run(
            SpawnSpec::new("/bin/sh", &["sh", "-c", "echo hi; echo err >&2"]),
            "echo",
        );
        assert_eq!(rec.code, Some(0));
        assert_eq!(out, "hi\nerr\n");
    }

    #[test]
    fn log_is_appended() {
        let _g = children_lock();
        let log = temp_dir("append").join("a.log");
        std::fs::write(&log, "old\n").unwrap();
        let mut spec = SpawnSpec::new("/bin/sh", &["sh", "-c", "echo new"]);
        spec.log_path = Some(log.clone());
        let c = spawn(&spec).unwrap();
        reaper::wait_pid(c.pid, 0).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "old\nnew\n");
    }

    #[test]
    fn missing_binary_is_enoent_and_reaped() {
        let _g = children_lock();
        let e = spawn(&SpawnSpec::new("/bin/nope-pmon3", &["nope"])).unwrap_err();
        assert_eq!(e.errno, libc::ENOENT);
        assert_eq!(
            e.message(),
            "exec /bin/nope-pmon3: No such file or directory"
        );
        assert!(no_children_left());
    }

    #[test]
    fn bad_cwd_and_log_report_stage() {
        let _g = children_lock();
        let mut spec = SpawnSpec::new("/bin/true", &["true"]);
        spec.cwd = Some("/nonexistent-pmon3".into());
        let e = spawn(&spec).unwrap_err();
        assert_eq!(
            (e.errno, e.context.as_str()),
            (libc::ENOENT, "chdir /nonexistent-pmon3")
        );
        let mut spec = SpawnSpec::new("/bin/true", &["true"]);
        spec.log_path = Some("/nonexistent-pmon3/x.log".into());
        let e = spawn(&spec).unwrap_err();
        assert_eq!(e.context, "open log /nonexistent-pmon3/x.log");
        assert!(no_children_left());
    }

    #[test]
    fn nul_byte_is_einval() {
        let e = spawn(&SpawnSpec::new("/bin/true", &["a\0b"])).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
    }

    #[test]
    fn env_is_exact() {
        let _g = children_lock();
        let mut spec = SpawnSpec::new("/usr/bin/env", &["env"]);
        spec.env = vec!["A=1".into(), "B=two words".into()];
        let (_, out) = run(spec, "env");
        assert_eq!(out, "A=1\nB=two words\n");
    }

    #[test]
    fn cwd_and_umask() {
        let _g = children_lock();
        let mut spec = SpawnSpec::new("/bin/sh", &["sh", "-c", "pwd; umask"]);
        spec.cwd = Some("/".into());
        spec.umask = Some(0o027);
        let (_, out) = run(spec, "cwd");
        assert_eq!(out, "/\n0027\n");
    }

    #[test]
    fn new_session_and_default_signals() {
        let _g = children_lock();
        // SIGPIPE ignored (Rust's runtime does that) and SIGUSR1 blocked in the parent must not
        // leak into the child.
        // SAFETY: signal mask of this test thread, restored below.
        let c = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut());
            let c = spawn(&SpawnSpec::new("/bin/sleep", &["sleep", "10"]));
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, ptr::null_mut());
            c.unwrap()
        };
        // SAFETY: getsid on our child.
        assert_eq!(unsafe { libc::getsid(c.pid) }, c.pid);
        let status = std::fs::read_to_string(format!("/proc/{}/status", c.pid)).unwrap();
        let field = |k: &str| {
            status
                .lines()
                .find(|l| l.starts_with(k))
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string()
        };
        assert_eq!(field("SigBlk:"), "0000000000000000");
        assert_eq!(field("SigIgn:"), "0000000000000000");
        reaper::pidfd_send_signal(c.pidfd.as_raw_fd(), libc::SIGKILL).unwrap();
        reaper::wait_pid(c.pid, 0).unwrap();
    }

    #[test]
    fn only_stdio_is_inherited() {
        let _g = children_lock();
        // A descriptor without CLOEXEC in the parent must not reach the child.
        // SAFETY: plain open; closed below.
        let leak = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
        assert!(leak >= 0);
        let (_, out) = run(SpawnSpec::new("/bin/ls", &["ls", "/proc/self/fd"]), "fds");
        // SAFETY: closing our own fd.
        unsafe { libc::close(leak) };
        assert_eq!(out, "0\n1\n2\n3\n"); // 3 is ls's own directory fd
    }

    #[test]
    fn uid_switch_as_root() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: not root");
            return;
        }
        let _g = children_lock();
        let dir = temp_dir("uid");
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let log = dir.join("nobody.log");
        let mut spec = SpawnSpec::new("/bin/sleep", &["sleep", "10"]);
        (spec.uid, spec.gid, spec.groups) = (Some(65534), Some(65534), Some(vec![65534]));
        spec.log_path = Some(log.clone());
        let c = spawn(&spec).unwrap();
        let status = std::fs::read_to_string(format!("/proc/{}/status", c.pid)).unwrap();
        let line = |k: &str| {
            status
                .lines()
                .find(|l| l.starts_with(k))
                .unwrap()
                .to_string()
        };
        assert_eq!(
            line("Uid:").split_whitespace().collect::<Vec<_>>(),
            ["Uid:", "65534", "65534", "65534", "65534"]
        );
        assert_eq!(
            line("Gid:").split_whitespace().collect::<Vec<_>>(),
            ["Gid:", "65534", "65534", "65534", "65534"]
        );
        assert_eq!(
            line("Groups:").split_whitespace().collect::<Vec<_>>(),
            ["Groups:", "65534"]
        );
        let meta = std::fs::metadata(&log).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (65534, 65534, 0o640 & !current_umask())
        );
        reaper::pidfd_send_signal(c.pidfd.as_raw_fd(), libc::SIGKILL).unwrap();
        reaper::wait_pid(c.pid, 0).unwrap();

        // The log is opened as the target user: a root-only directory is refused.
        let mut spec = SpawnSpec::new("/bin/true", &["true"]);
        (spec.uid, spec.gid) = (Some(65534), Some(65534));
        let private = temp_dir("uid-private");
        std::fs::set_permissions(
            &private,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        spec.log_path = Some(private.join("x.log"));
        let e = spawn(&spec).unwrap_err();
        assert_eq!(e.errno, libc::EACCES);
        assert!(e.context.starts_with("open log "));
        assert!(no_children_left());
    }

    fn current_umask() -> u32 {
        // SAFETY: umask is read by setting and restoring it.
        unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        }
    }

    /// `cargo test --release -- --ignored --nocapture spawn_cost` prints the median spawn time.
    #[test]
    #[ignore]
    fn spawn_cost() {
        let _g = children_lock();
        let spec = SpawnSpec::new("/bin/true", &["true"]);
        let mut times: Vec<Duration> = (0..200)
            .map(|_| {
                let t = Instant::now();
                let c = spawn(&spec).unwrap();
                let d = t.elapsed();
                reaper::wait_pid(c.pid, 0).unwrap();
                d
            })
            .collect();
        times.sort();
        eprintln!(
            "spawn /bin/true: median {:?}, p90 {:?}",
            times[100], times[180]
        );
    }
}
