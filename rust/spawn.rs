//! SpawnSpec -> child process, vfork-style.
//!
//! Everything the child needs (C strings, pointer arrays, group list) is built here, before the
//! clone. The child runs [`preexec::child_main`] on its own stack in our memory
//! (CLONE_VM | CLONE_VFORK, as glibc's posix_spawn): no page tables are copied, and the parent
//! resumes once the child has exec'd or exited. A failure is reported through the shared
//! [`ChildCtx`] and the failed child is reaped here, so the caller never sees it.

use crate::clone3::{clone3_vm, CloneArgs, CLONE_INTO_CGROUP};
use crate::error::{errno, Error, Result};
use crate::preexec::{child_main, ChildCtx, Stage, PID_DIGITS};
use crate::reaper;
use libc::{c_char, c_int, c_void};
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Stack for the cloned child: it only runs `child_main` and a few syscalls.
const CHILD_STACK: usize = 64 * 1024;

/// More descriptors than any socket-activated service needs; keeps 3 + 2n far from overflow.
pub const MAX_PASS_FDS: usize = 4096;

/// prlimit64's "unlimited".
pub const RLIM_INFINITY: u64 = u64::MAX;

pub use crate::preexec::Rlimit;

const LISTEN_PID: &[u8] = b"LISTEN_PID=";

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
    /// A descriptor of the caller's on a cgroup v2 directory (O_RDONLY | O_DIRECTORY): the child
    /// is born there (clone3 with CLONE_INTO_CGROUP, Linux >= 5.7), and so is every descendant.
    pub cgroup_fd: Option<i32>,
    /// The slow fallback for `cgroup_fd` (kernels before 5.7, clone3 filtered by seccomp): a
    /// descriptor of the caller's, opened O_WRONLY on a cgroup v2 `cgroup.procs`, to which the
    /// child writes "0" right after setsid. That migration can suspend the parent for 10-15 ms.
    pub cgroup_procs_fd: Option<i32>,
    /// Set in the child before the identity switch, so raising a hard limit works as root.
    pub rlimits: Vec<Rlimit>,
    /// Caller descriptors that the child gets as 3, 4, 5, ... in this order (socket activation).
    pub pass_fds: Vec<i32>,
    /// Add `LISTEN_PID=<the child's pid>` to the environment (replacing one in `env`).
    pub listen_pid: bool,
    /// Let the child finish its exec before we run again: the calling thread is SCHED_BATCH while
    /// it waits in clone (a batch task woken does not preempt the one running), so the wake-up
    /// when the child's execve lets go of our memory does not take the CPU from the child
    /// mid-exec. Only when the thread is SCHED_OTHER; the child takes SCHED_OTHER back at once.
    pub child_first: bool,
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

/// NULL-terminated pointer array over `strings` (which must outlive it) and `extra`.
fn pointers(strings: &[CString], extra: Option<*const c_char>) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(extra)
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// Whether children may be cloned with a shared descriptor table (see `ChildCtx::shares_files`):
/// close_range's CLOSE_RANGE_UNSHARE needs Linux 5.9, and a child that finds it refused (older
/// kernel, seccomp) turns this off for good and is spawned again the usual way.
static SHARE_FILES: AtomicBool = AtomicBool::new(true);

/// Whether a child of `spec` can share our descriptor table until it takes its own: it needs none
/// of ours (no pass_fds, no log_fd, no cgroup.procs descriptor).
fn can_share_files(spec: &SpawnSpec) -> bool {
    SHARE_FILES.load(Ordering::Relaxed)
        && spec.pass_fds.is_empty()
        && spec.log_fd.is_none()
        && spec.cgroup_procs_fd.is_none()
}

/// The calling thread becomes SCHED_BATCH if it is SCHED_OTHER; whether it did.
fn enter_batch() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscalls on the calling thread (tid 0) with a valid param.
    unsafe {
        libc::sched_getscheduler(0) == libc::SCHED_OTHER
            && libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) == 0
    }
}

fn leave_batch() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: as in enter_batch; BATCH -> OTHER at the same nice value is always allowed.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
}

/// Checks that need no child: a failure here costs no clone.
fn validate(spec: &SpawnSpec) -> Result<()> {
    if spec.log_fd.is_some_and(|fd| fd < 3) || (spec.log_fd.is_some() && spec.log_path.is_some()) {
        return Err(Error::new(
            libc::EINVAL,
            "log_fd must be >= 3 and excludes log_path",
        ));
    }
    if spec.cgroup_procs_fd.is_some_and(|fd| fd < 0) {
        return Err(Error::invalid("cgroup_procs_fd must be >= 0"));
    }
    if spec.cgroup_fd.is_some_and(|fd| fd < 0) {
        return Err(Error::invalid("cgroup_fd must be >= 0"));
    }
    if spec.cgroup_fd.is_some() && spec.cgroup_procs_fd.is_some() {
        return Err(Error::invalid("cgroup_fd excludes cgroup_procs_fd"));
    }
    if spec.pass_fds.len() > MAX_PASS_FDS || spec.pass_fds.iter().any(|&fd| fd < 0) {
        return Err(Error::invalid(format!(
            "pass_fds: at most {MAX_PASS_FDS} descriptors, each >= 0"
        )));
    }
    Ok(())
}

/// `spec` born in the cgroup v2 directory `dir` (CLONE_INTO_CGROUP, or the `cgroup.procs`
/// fallback with `procs`), opened for this spawn and closed after it. With `only_if_empty`, EBUSY
/// and no child when the cgroup has processes (its `cgroup.events` says populated): a restart never
/// runs beside what is left of the copy before it. One call for the restart path: no descriptor
/// kept per process, no round trips for the check and the open.
pub fn spawn_in_cgroup(
    spec: &SpawnSpec,
    dir: &OsStr,
    procs: bool,
    only_if_empty: bool,
) -> Result<Spawned> {
    let path = |leaf: &str| {
        let mut p = dir.as_bytes().to_vec();
        if !leaf.is_empty() {
            p.extend_from_slice(b"/");
            p.extend_from_slice(leaf.as_bytes());
        }
        CString::new(p).map_err(|_| Error::invalid("cgroup_dir: path contains a NUL byte"))
    };
    let open = |p: &CString, flags: c_int| -> Result<OwnedFd> {
        // SAFETY: a NUL-terminated path; the descriptor is owned below.
        let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(Error::last(format!("cgroup {}", p.to_string_lossy())));
        }
        // SAFETY: the kernel just gave us this fd.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    if only_if_empty {
        let events = path("cgroup.events")?;
        match open(&events, libc::O_RDONLY) {
            Ok(fd) => {
                let mut buf = [0u8; 256];
                // SAFETY: reading into a local buffer from our own descriptor.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                let text = buf.get(..usize::try_from(n).unwrap_or(0)).unwrap_or(&[]);
                if text.windows(11).any(|w| w == b"populated 1") {
                    return Err(Error::new(
                        libc::EBUSY,
                        format!("cgroup {} still has processes", dir.to_string_lossy()),
                    ));
                }
            }
            Err(e) if e.errno == libc::ENOENT => {}
            Err(e) => return Err(e),
        }
    }
    let mut spec = spec.clone();
    let fd = if procs {
        open(&path("cgroup.procs")?, libc::O_WRONLY)?
    } else {
        open(&path("")?, libc::O_RDONLY | libc::O_DIRECTORY)?
    };
    if procs {
        spec.cgroup_procs_fd = Some(fd.as_raw_fd());
    } else {
        spec.cgroup_fd = Some(fd.as_raw_fd());
    }
    spawn(&spec)
}

/// Start the process described by `spec`.
pub fn spawn(spec: &SpawnSpec) -> Result<Spawned> {
    let file = cstring("file", &spec.file)?;
    let argv = cstrings("argv", &spec.argv)?;
    validate(spec)?;
    // With listen_pid a caller's LISTEN_PID would shadow ours for getenv(): drop it.
    let env: Vec<OsString> = spec
        .env
        .iter()
        .filter(|e| !(spec.listen_pid && e.as_bytes().starts_with(LISTEN_PID)))
        .cloned()
        .collect();
    let env = cstrings("env", &env)?;
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
    // "LISTEN_PID=" and room for the digits, which the child writes: this spawn's own buffer,
    // since the child writes into our memory (CLONE_VM).
    let mut listen_buf: Vec<u8> = LISTEN_PID.to_vec();
    listen_buf.resize(LISTEN_PID.len() + PID_DIGITS, 0);
    let listen_base = listen_buf.as_mut_ptr();
    let argv_p = pointers(&argv, None);
    let env_p = pointers(
        &env,
        spec.listen_pid.then_some(listen_base as *const c_char),
    );
    let mut pass_tmp: Vec<c_int> = vec![-1; spec.pass_fds.len()];
    let groups: Vec<libc::gid_t> = spec.groups.clone().unwrap_or_default();
    // SAFETY: geteuid cannot fail.
    let set_groups =
        spec.groups.is_some() || (spec.uid.is_some() && unsafe { libc::geteuid() } == 0);

    let mut ctx = ChildCtx {
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
        cgroup_procs_fd: spec.cgroup_procs_fd.unwrap_or(-1),
        rlimits: spec.rlimits.as_ptr(),
        nrlimits: spec.rlimits.len(),
        pass_fds: spec.pass_fds.as_ptr(),
        npass: spec.pass_fds.len(),
        pass_tmp: pass_tmp.as_mut_ptr(),
        shares_files: can_share_files(spec),
        reset_policy: false,
        listen_pid: if spec.listen_pid {
            // SAFETY: within listen_buf, which is LISTEN_PID.len() + PID_DIGITS long.
            unsafe { listen_base.add(LISTEN_PID.len()) }
        } else {
            ptr::null_mut()
        },
        stage: AtomicI32::new(Stage::Ok as i32),
        errno: AtomicI32::new(0),
        detail: AtomicI32::new(0),
    };

    let batch = spec.child_first && enter_batch();
    ctx.reset_policy = batch;
    let cloned = match spec.cgroup_fd {
        None => clone_child(&ctx),
        Some(fd) => clone3_into_cgroup(&ctx, fd),
    };
    if batch {
        leave_batch();
    }
    let (pid, pidfd) = cloned?;
    let stage = Stage::from_i32(ctx.stage.load(Ordering::SeqCst));
    if stage != Stage::Ok {
        drop(pidfd);
        // The child has exited (CLONE_VFORK): collect it so no zombie is left. ECHILD only if a
        // concurrent wait4(-1) got it first, which is fine.
        let _ = reaper::wait_pid(pid, 0);
        let errno = ctx.errno.load(Ordering::SeqCst);
        if ctx.shares_files
            && stage == Stage::CloseFds
            && matches!(errno, libc::ENOSYS | libc::EINVAL | libc::EPERM)
        {
            SHARE_FILES.store(false, Ordering::Relaxed); // no CLOSE_RANGE_UNSHARE here
            return spawn(spec);
        }
        let detail = ctx.detail.load(Ordering::SeqCst) as usize;
        return Err(Error::new(
            ctx.errno.load(Ordering::SeqCst),
            failure_context(stage, detail, spec),
        ));
    }
    // The child has exec'd: these were its and may go now (kept alive until here on purpose).
    drop((listen_buf, pass_tmp));
    Ok(Spawned { pid, pidfd })
}

/// "RLIMIT_NOFILE" for 7, the number itself for resources this table does not know.
// The RLIMIT_* constants are u32 with glibc and c_int with musl.
#[allow(clippy::unnecessary_cast)]
pub fn rlimit_name(resource: c_int) -> String {
    const NAMES: [(u32, &str); 16] = [
        (libc::RLIMIT_CPU as u32, "RLIMIT_CPU"),
        (libc::RLIMIT_FSIZE as u32, "RLIMIT_FSIZE"),
        (libc::RLIMIT_DATA as u32, "RLIMIT_DATA"),
        (libc::RLIMIT_STACK as u32, "RLIMIT_STACK"),
        (libc::RLIMIT_CORE as u32, "RLIMIT_CORE"),
        (libc::RLIMIT_RSS as u32, "RLIMIT_RSS"),
        (libc::RLIMIT_NPROC as u32, "RLIMIT_NPROC"),
        (libc::RLIMIT_NOFILE as u32, "RLIMIT_NOFILE"),
        (libc::RLIMIT_MEMLOCK as u32, "RLIMIT_MEMLOCK"),
        (libc::RLIMIT_AS as u32, "RLIMIT_AS"),
        (libc::RLIMIT_LOCKS as u32, "RLIMIT_LOCKS"),
        (libc::RLIMIT_SIGPENDING as u32, "RLIMIT_SIGPENDING"),
        (libc::RLIMIT_MSGQUEUE as u32, "RLIMIT_MSGQUEUE"),
        (libc::RLIMIT_NICE as u32, "RLIMIT_NICE"),
        (libc::RLIMIT_RTPRIO as u32, "RLIMIT_RTPRIO"),
        (libc::RLIMIT_RTTIME as u32, "RLIMIT_RTTIME"),
    ];
    NAMES
        .iter()
        .find(|(r, _)| *r as c_int == resource)
        .map_or_else(|| resource.to_string(), |(_, n)| (*n).to_string())
}

/// The file behind one of our descriptors, for error messages ("fd N" when unknown).
fn fd_path(fd: i32) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| format!("fd {fd}"))
}

/// "<stage> <what>" for the error message, e.g. "exec /bin/nope"; `detail` indexes the list of
/// a list-driven stage.
fn failure_context(stage: Stage, detail: usize, spec: &SpawnSpec) -> String {
    let show = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    match stage {
        Stage::Ok | Stage::Exec => format!("exec {}", PathBuf::from(&spec.file).display()),
        Stage::Sigmask => "sigprocmask".into(),
        Stage::Setsid => "setsid".into(),
        Stage::Sched => "sched_setscheduler SCHED_OTHER".into(),
        Stage::Cgroup => format!("cgroup {}", fd_path(spec.cgroup_procs_fd.unwrap_or(-1))),
        Stage::Setrlimit => match spec.rlimits.get(detail) {
            Some(rl) => format!("setrlimit {}", rlimit_name(rl.resource)),
            None => "setrlimit".into(),
        },
        Stage::PassFds => match spec.pass_fds.get(detail) {
            Some(fd) => format!("pass_fds {fd}"),
            None => "pass_fds".into(),
        },
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

/// Run `f` with every signal blocked in this thread, so that no signal handler of ours runs in
/// a child that shares our memory or our descriptors.
pub(crate) fn signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: sigset_t is plain old data, filled by sigfillset; the old mask is restored below.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let r = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut());
        r
    }
}

/// clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) with all signals blocked around it. CLONE_PIDFD
/// gives the pidfd atomically, before any other thread could reap the child and let its pid be
/// reused.
fn clone_child(ctx: &ChildCtx) -> Result<(i32, OwnedFd)> {
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // Stacks grow down: pass the 16-byte aligned top.
    let top = ((stack.as_mut_ptr() as usize + CHILD_STACK) & !15) as *mut c_void;
    let arg = ctx as *const ChildCtx as *mut c_void;
    let mut pidfd: c_int = -1;
    // SAFETY: plain libc calls on valid local storage. The child only runs child_main, which
    // reads ctx and writes its atomics; ctx and the stack outlive the call since CLONE_VFORK
    // suspends us until the child has exec'd or exited.
    let (pid, err) = signals_blocked(|| unsafe {
        let files = if ctx.shares_files {
            libc::CLONE_FILES
        } else {
            0
        };
        let flags = libc::CLONE_VM | libc::CLONE_VFORK | files | libc::SIGCHLD;
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
        (pid, err)
    });
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

/// As [`clone_child`], but with clone3 and CLONE_INTO_CGROUP: the child is born in the cgroup
/// behind `cgroup_fd`, so nothing is migrated (no wait for an RCU grace period while we are
/// suspended). clone3 always has CLONE_PIDFD (both came with 5.2/5.3).
fn clone3_into_cgroup(ctx: &ChildCtx, cgroup_fd: c_int) -> Result<(i32, OwnedFd)> {
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    let base = stack.as_mut_ptr() as usize;
    // The kernel starts the child at stack + stack_size: make that end 16-byte aligned.
    let size = ((base + CHILD_STACK) & !15) - base;
    let mut pidfd: c_int = -1;
    let files = if ctx.shares_files {
        libc::CLONE_FILES
    } else {
        0
    };
    let mut args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | files) as u64
            | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd as *mut c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: base as u64,
        stack_size: size as u64,
        cgroup: cgroup_fd as u64,
        ..Default::default()
    };
    let arg = ctx as *const ChildCtx as *mut c_void;
    // SAFETY: CLONE_VM | CLONE_VFORK with a stack of ours that outlives the call (we are
    // suspended until the child has exec'd or exited); child_main only makes raw syscalls on ctx
    // and _exits. Signals are blocked around it.
    let r = signals_blocked(|| unsafe { clone3_vm(&mut args, child_main, arg) });
    match r {
        // SAFETY: the kernel just gave us this fd (CLONE_PIDFD).
        Ok(pid) => Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) })),
        Err(e) => Err(clone3_error(e, cgroup_fd)),
    }
}

/// What a failed clone3 into a cgroup means for the caller. ENOSYS (also for E2BIG: a kernel
/// before 5.7 does not know the `cgroup` field) tells it to fall back to `cgroup_procs_fd`.
fn clone3_error(err: c_int, cgroup_fd: c_int) -> Error {
    let what = format!("clone3 into cgroup {}", fd_path(cgroup_fd));
    match err {
        libc::ENOSYS | libc::E2BIG => Error::new(
            libc::ENOSYS,
            format!(
                "{what} (needs Linux >= 5.7 on x86_64 or aarch64 and clone3 not filtered; \
                 cgroup_procs_fd is the fallback)"
            ),
        ),
        libc::EBADF => Error::new(err, format!("{what} (not an open cgroup v2 directory)")),
        _ => Error::new(err, what),
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
        // SAFETY: our own read end, not used after this.
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
    fn a_shared_table_is_left_as_it_was() {
        let _g = children_lock();
        // The child shares our table (CLONE_FILES) until it takes its own: ours must come out of
        // the spawn untouched (same descriptors, stdout not replaced by the child's log), and the
        // child sees none of them.
        // SAFETY: plain opens and fstat on descriptors of ours; closed below.
        let keep: Vec<c_int> = (0..64)
            .map(|_| unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })
            .collect();
        assert!(keep.iter().all(|&fd| fd >= 3));
        let ino = |fd: c_int| {
            // SAFETY: stat is plain old data filled by fstat.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: a valid pointer to local storage.
            (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
        };
        let stdout_before = ino(1);
        let spec = SpawnSpec::new("/bin/ls", &["ls", "/proc/self/fd"]);
        assert!(can_share_files(&spec));
        let (_, out) = run(spec, "shared");
        assert_eq!(out, "0\n1\n2\n3\n");
        assert_eq!(ino(1), stdout_before);
        for &fd in &keep {
            assert!(ino(fd).is_some(), "descriptor {fd} was closed by the child");
            // SAFETY: our own descriptor, closed once.
            unsafe { libc::close(fd) };
        }
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

    fn is_root() -> bool {
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    /// linux/capability.h
    const CAP_SYS_RESOURCE: u32 = 24;

    /// Whether `cap` is in this process's effective set (/proc/self/status CapEff).
    fn has_capability(cap: u32) -> bool {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .unwrap()
            .trim();
        u64::from_str_radix(hex, 16).unwrap() & (1u64 << cap) != 0
    }

    pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn kill_and_reap(c: Spawned) {
        let _ = reaper::pidfd_send_signal(c.pidfd.as_raw_fd(), libc::SIGKILL);
        reaper::wait_pid(c.pid, 0).unwrap();
    }

    /// A fresh cgroup under the cgroup2 mount, emptied (cgroup.kill) and removed on drop.
    pub(crate) struct TempCgroup(pub(crate) PathBuf);

    /// The first cgroup2 mount in /proc/self/mountinfo (/sys/fs/cgroup/unified on a hybrid
    /// setup, /sys/fs/cgroup on a unified one).
    pub(crate) fn cgroup2_mount() -> Option<PathBuf> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        info.lines().find_map(|line| {
            let (fields, fs) = line.split_once(" - ")?;
            if fs.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
            let raw = fields.split_whitespace().nth(4)?;
            let mut out = Vec::new();
            let mut bytes = raw.bytes();
            while let Some(b) = bytes.next() {
                if b == b'\\' {
                    let code: String = bytes.by_ref().take(3).map(char::from).collect();
                    out.push(u8::from_str_radix(&code, 8).ok()?);
                } else {
                    out.push(b);
                }
            }
            Some(PathBuf::from(OsStr::from_bytes(&out)))
        })
    }

    impl TempCgroup {
        /// None (the test skips) unless we are root and may create a cgroup on the cgroup2 mount.
        pub(crate) fn new(tag: &str) -> Option<TempCgroup> {
            let base = cgroup2_mount()?;
            if !is_root() || !base.join("cgroup.procs").exists() {
                return None;
            }
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let dir = base.join(format!("pmon3-test-{}-{tag}-{nanos}", std::process::id()));
            std::fs::create_dir(&dir).ok()?;
            Some(TempCgroup(dir))
        }

        /// O_RDONLY | O_DIRECTORY, as `cgroup_fd` wants it.
        fn dir_fd(&self) -> OwnedFd {
            std::fs::File::open(&self.0).unwrap().into()
        }

        fn procs_fd(&self) -> OwnedFd {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(self.0.join("cgroup.procs"))
                .unwrap();
            f.into()
        }

        pub(crate) fn pids(&self) -> Vec<i32> {
            std::fs::read_to_string(self.0.join("cgroup.procs"))
                .unwrap()
                .lines()
                .map(|l| l.parse().unwrap())
                .collect()
        }
    }

    impl Drop for TempCgroup {
        fn drop(&mut self) {
            self.kill();
            let _ = std::fs::remove_dir(&self.0);
        }
    }

    impl TempCgroup {
        /// SIGKILL everything in it and wait until it is empty (a child must still be reaped).
        fn kill(&self) {
            if std::fs::write(self.0.join("cgroup.kill"), "1").is_err() {
                for pid in self.pids() {
                    // SAFETY: plain kill; the pids were in the cgroup a moment ago.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            let end = Instant::now() + Duration::from_secs(10);
            while !self.pids().is_empty() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    fn ppid(pid: i32) -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    #[test]
    fn cgroup_procs_fd_holds_child_and_grandchild() {
        let Some(cg) = TempCgroup::new("procs") else {
            eprintln!("skipped: needs root and a writable cgroup2 mount");
            return;
        };
        let _g = children_lock();
        let procs = cg.procs_fd();
        let mut spec = SpawnSpec::new("/bin/sh", &["sh", "-c", "sleep 30 & exec sleep 31"]);
        spec.cgroup_procs_fd = Some(procs.as_raw_fd());
        // Dropping to nobody afterwards must not matter: the move happens while still root.
        (spec.uid, spec.gid) = (Some(65534), Some(65534));
        let c = spawn(&spec).unwrap();
        wait_until("child and grandchild in the cgroup", || {
            cg.pids().len() == 2
        });
        let pids = cg.pids();
        assert!(pids.contains(&c.pid), "{pids:?} lacks {}", c.pid);
        let grandchild = pids.iter().find(|&&p| p != c.pid).copied().unwrap();
        assert_eq!(ppid(grandchild), Some(c.pid));
        cg.kill();
        reaper::wait_pid(c.pid, 0).unwrap();
        // The reaper tests make this process a subreaper: collect the orphaned grandchild too.
        let _ = reaper::reap();
    }

    #[test]
    fn spawn_in_cgroup_refuses_a_populated_one() {
        let Some(cg) = TempCgroup::new("inempty") else {
            eprintln!("skipped: needs root and a writable cgroup2 mount");
            return;
        };
        let _g = children_lock();
        let spec = SpawnSpec::new("/bin/sleep", &["sleep", "30"]);
        let first = spawn_in_cgroup(&spec, cg.0.as_os_str(), false, true).unwrap();
        assert_eq!(cg.pids(), vec![first.pid]);
        wait_until("cgroup.events says populated", || {
            std::fs::read_to_string(cg.0.join("cgroup.events"))
                .is_ok_and(|t| t.contains("populated 1"))
        });
        let e = spawn_in_cgroup(&spec, cg.0.as_os_str(), false, true).unwrap_err();
        assert_eq!(e.errno, libc::EBUSY);
        assert_eq!(cg.pids(), vec![first.pid]); // nothing started beside it
        let second = spawn_in_cgroup(&spec, cg.0.as_os_str(), true, false).unwrap(); // procs: the fallback
        let mut pids = cg.pids();
        pids.sort_unstable();
        assert_eq!(pids, {
            let mut v = vec![first.pid, second.pid];
            v.sort_unstable();
            v
        });
        cg.kill();
        reaper::wait_pid(first.pid, 0).unwrap();
        reaper::wait_pid(second.pid, 0).unwrap();
        let gone = cg.0.join("gone");
        let e = spawn_in_cgroup(&spec, gone.as_os_str(), false, true).unwrap_err();
        assert_eq!(e.errno, libc::ENOENT);
    }

    #[test]
    fn child_first_leaves_both_with_the_normal_policy() {
        let _g = children_lock();
        let mut spec = SpawnSpec::new("/bin/sh", &["sh", "-c", "grep ^policy /proc/self/sched"]);
        spec.child_first = true;
        let (rec, out) = run(spec, "childfirst");
        assert_eq!(rec.code, Some(0));
        assert!(
            out.split_whitespace().last() == Some("0"),
            "child policy: {out}"
        ); // SCHED_OTHER
           // SAFETY: plain syscall on this thread.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }

    #[test]
    fn cgroup_write_failure_is_reported() {
        let _g = children_lock();
        // A read-only descriptor: the write fails with EBADF wherever cgroups are.
        let ro = std::fs::File::open("/dev/null").unwrap();
        let mut spec = SpawnSpec::new("/bin/true", &["true"]);
        spec.cgroup_procs_fd = Some(ro.as_raw_fd());
        let e = spawn(&spec).unwrap_err();
        assert_eq!(
            (e.errno, e.context.as_str()),
            (libc::EBADF, "cgroup /dev/null")
        );
        spec.cgroup_procs_fd = Some(-1);
        assert_eq!(spawn(&spec).unwrap_err().errno, libc::EINVAL);
        assert!(no_children_left());
    }

    /// Whether `pidfd` becomes readable (its process exited) within `ms`.
    pub(crate) fn pidfd_exited(pidfd: &OwnedFd, ms: c_int) -> bool {
        let mut p = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one local pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        r == 1 && p.revents & libc::POLLIN != 0
    }

    #[test]
    fn cgroup_fd_holds_child_and_grandchild() {
        let Some(cg) = TempCgroup::new("clone3") else {
            eprintln!("skipped: needs root and a writable cgroup2 mount");
            return;
        };
        let _g = children_lock();
        let dir = cg.dir_fd();
        let mut spec = SpawnSpec::new("/bin/sh", &["sh", "-c", "sleep 30 & exec sleep 31"]);
        spec.cgroup_fd = Some(dir.as_raw_fd());
        (spec.uid, spec.gid) = (Some(65534), Some(65534));
        let c = spawn(&spec).unwrap();
        // Born there: in the cgroup as soon as spawn returns (sh may have forked already).
        assert!(cg.pids().contains(&c.pid));
        wait_until("child and grandchild in the cgroup", || {
            cg.pids().len() == 2
        });
        let pids = cg.pids();
        let grandchild = pids.iter().find(|&&p| p != c.pid).copied().unwrap();
        assert_eq!(ppid(grandchild), Some(c.pid));
        // The pidfd is the child's: quiet while it runs, readable once SIGKILL through it lands.
        assert!(!pidfd_exited(&c.pidfd, 0));
        reaper::pidfd_send_signal(c.pidfd.as_raw_fd(), libc::SIGKILL).unwrap();
        assert!(pidfd_exited(&c.pidfd, 10_000));
        let rec = reaper::wait_pid(c.pid, 0).unwrap().unwrap();
        assert_eq!(rec.signal, Some(libc::SIGKILL));
        cg.kill();
        let _ = reaper::reap(); // the orphaned grandchild, when we are a subreaper
    }

    /// Many clone3 spawns from several threads at once, each checked end to end: a trampoline
    /// that clobbers a register or the wrong stack shows up here as a crash or a wrong result.
    #[test]
    fn cgroup_fd_spawns_from_threads() {
        let Some(cg) = TempCgroup::new("clone3-threads") else {
            eprintln!("skipped: needs root and a writable cgroup2 mount");
            return;
        };
        let _g = children_lock();
        let dir = cg.dir_fd();
        let fd = dir.as_raw_fd();
        std::thread::scope(|s| {
            for t in 0..3 {
                s.spawn(move || {
                    for i in 0..40 {
                        let code = (t * 40 + i) % 200;
                        let script = format!("exit {code}");
                        let mut spec = SpawnSpec::new("/bin/sh", &["sh", "-c", &script]);
                        spec.cgroup_fd = Some(fd);
                        let c = spawn(&spec).unwrap();
                        let rec = reaper::wait_pid(c.pid, 0).unwrap().unwrap();
                        assert_eq!((rec.pid, rec.code), (c.pid, Some(code)));
                    }
                });
            }
        });
        assert!(cg.pids().is_empty());
    }

    #[test]
    fn cgroup_fd_exec_failure_is_reported_and_reaped() {
        let Some(cg) = TempCgroup::new("clone3-exec") else {
            eprintln!("skipped: needs root and a writable cgroup2 mount");
            return;
        };
        let _g = children_lock();
        let dir = cg.dir_fd();
        let mut spec = SpawnSpec::new("/bin/nope-pmon3", &["nope"]);
        spec.cgroup_fd = Some(dir.as_raw_fd());
        let e = spawn(&spec).unwrap_err();
        assert_eq!(
            (e.errno, e.context.as_str()),
            (libc::ENOENT, "exec /bin/nope-pmon3")
        );
        // A stage before exec, as the target user.
        let mut spec = SpawnSpec::new("/bin/true", &["true"]);
        spec.cgroup_fd = Some(dir.as_raw_fd());
        spec.cwd = Some("/nonexistent-pmon3".into());
        let e = spawn(&spec).unwrap_err();
        assert_eq!(
            (e.errno, e.context.as_str()),
            (libc::ENOENT, "chdir /nonexistent-pmon3")
        );
        assert!(no_children_left());
        assert!(cg.pids().is_empty());
    }

    #[test]
    fn bad_cgroup_fd_is_a_clear_error() {
        let _g = children_lock();
        let mut spec = SpawnSpec::new("/bin/true", &["true"]);
        // A directory, but not a cgroup.
        let tmp = temp_dir("not-a-cgroup");
        let dir = std::fs::File::open(&tmp).unwrap();
        spec.cgroup_fd = Some(dir.as_raw_fd());
        let e = spawn(&spec).unwrap_err();
        assert_eq!(e.errno, libc::EBADF);
        assert_eq!(
            e.message(),
            format!(
                "clone3 into cgroup {} (not an open cgroup v2 directory): Bad file descriptor",
                tmp.display()
            )
        );
        // Not open at all.
        spec.cgroup_fd = Some(999_999);
        let e = spawn(&spec).unwrap_err();
        assert_eq!(
            (e.errno, e.context.as_str()),
            (
                libc::EBADF,
                "clone3 into cgroup fd 999999 (not an open cgroup v2 directory)"
            )
        );
        // Checked before any clone.
        spec.cgroup_fd = Some(-1);
        assert_eq!(spawn(&spec).unwrap_err().errno, libc::EINVAL);
        spec.cgroup_fd = Some(dir.as_raw_fd());
        spec.cgroup_procs_fd = Some(dir.as_raw_fd());
        let e = spawn(&spec).unwrap_err();
        assert_eq!(
            (e.errno, e.context.as_str()),
            (libc::EINVAL, "cgroup_fd excludes cgroup_procs_fd")
        );
        assert!(no_children_left());
    }

    #[test]
    fn cgroup_procs_file_is_not_a_cgroup_fd() {
        let Some(cg) = TempCgroup::new("clone3-procs") else {
            eprintln!("skipped: needs root and a writable cgroup2 mount");
            return;
        };
        let _g = children_lock();
        // The fallback's descriptor passed as cgroup_fd: a cgroup file, not its directory.
        let procs = cg.procs_fd();
        let mut spec = SpawnSpec::new("/bin/true", &["true"]);
        spec.cgroup_fd = Some(procs.as_raw_fd());
        let e = spawn(&spec).unwrap_err();
        assert_eq!(e.errno, libc::EBADF);
        assert!(e
            .context
            .ends_with("/cgroup.procs (not an open cgroup v2 directory)"));
        assert!(no_children_left());
    }

    #[test]
    fn clone3_error_tells_the_caller_to_fall_back() {
        // An old kernel (ENOSYS, or E2BIG for an unknown `cgroup` field) reads as ENOSYS.
        for err in [libc::ENOSYS, libc::E2BIG] {
            let e = clone3_error(err, 999_999);
            assert_eq!(e.errno, libc::ENOSYS);
            assert!(e.context.contains("cgroup_procs_fd is the fallback"), "{e}");
        }
        let e = clone3_error(libc::EBUSY, 999_999);
        assert_eq!(
            (e.errno, e.context.as_str()),
            (libc::EBUSY, "clone3 into cgroup fd 999999")
        );
    }

    /// (soft, hard) of a /proc/<pid>/limits row, "unlimited" as RLIM_INFINITY.
    fn proc_limit(pid: i32, row: &str) -> (u64, u64) {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = limits.lines().find(|l| l.starts_with(row)).unwrap();
        let mut it = line[row.len()..].split_whitespace().map(|v| match v {
            "unlimited" => RLIM_INFINITY,
            v => v.parse().unwrap(),
        });
        (it.next().unwrap(), it.next().unwrap())
    }

    #[test]
    fn rlimits_are_set_in_the_child() {
        let _g = children_lock();
        let mut own: libc::rlimit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit into local storage.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut own) }, 0);
        let mut spec = SpawnSpec::new("/bin/sleep", &["sleep", "10"]);
        let nofile = libc::RLIMIT_NOFILE as c_int;
        let core = libc::RLIMIT_CORE as c_int;
        spec.rlimits = vec![
            Rlimit {
                resource: nofile,
                soft: 100,
                hard: 200,
            },
            Rlimit {
                resource: core,
                soft: 0,
                hard: RLIM_INFINITY,
            },
        ];
        if is_root() {
            // Limits are set before the child drops to nobody: raising a hard limit (which needs
            // CAP_SYS_RESOURCE, not granted in every container) proves the order.
            if has_capability(CAP_SYS_RESOURCE) {
                spec.rlimits[0].hard = own.rlim_max + 1;
            }
            (spec.uid, spec.gid) = (Some(65534), Some(65534));
        }
        let c = spawn(&spec).unwrap();
        let nofile_now = proc_limit(c.pid, "Max open files");
        let core_now = proc_limit(c.pid, "Max core file size");
        kill_and_reap(c);
        assert_eq!(nofile_now, (100, spec.rlimits[0].hard));
        assert_eq!(core_now, (0, RLIM_INFINITY));
    }

    #[test]
    fn rlimit_failure_names_the_resource() {
        let _g = children_lock();
        let mut spec = SpawnSpec::new("/bin/true", &["true"]);
        spec.rlimits = vec![
            Rlimit {
                resource: libc::RLIMIT_CORE as c_int,
                soft: 0,
                hard: 0,
            },
            Rlimit {
                resource: libc::RLIMIT_NOFILE as c_int,
                soft: 10,
                hard: 5, // soft above hard
            },
        ];
        let e = spawn(&spec).unwrap_err();
        assert_eq!(
            (e.errno, e.context.as_str()),
            (libc::EINVAL, "setrlimit RLIMIT_NOFILE")
        );
        assert_eq!(rlimit_name(99), "99");
        assert!(no_children_left());
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 into a local array; the fds are owned from here on.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        }
    }

    fn read_all(fd: OwnedFd) -> String {
        use std::io::Read;
        let mut s = String::new();
        std::fs::File::from(fd).read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn pass_fds_land_on_3_and_up_in_order() {
        let _g = children_lock();
        // Six pipes; their write ends go in reverse order, so sources usually sit inside the
        // target range 3..9 in another order (the overlap that naive dup2 gets wrong).
        let pipes: Vec<(OwnedFd, OwnedFd)> = (0..6).map(|_| pipe()).collect();
        let (log_r, log_w) = pipe();
        let mut spec = SpawnSpec::new(
            "/bin/sh",
            &[
                "sh",
                "-c",
                "for i in 3 4 5 6 7 8; do echo $i >&$i; done; ls /proc/self/fd; echo log",
            ],
        );
        spec.pass_fds = pipes.iter().rev().map(|(_, w)| w.as_raw_fd()).collect();
        spec.log_fd = Some(log_w.as_raw_fd());
        let overlap = spec.pass_fds.iter().any(|fd| (3..9).contains(fd));
        let c = spawn(&spec).unwrap();
        drop(log_w);
        let mut ends = Vec::new();
        for (r, w) in pipes {
            drop(w);
            ends.push(r);
        }
        let rec = reaper::wait_pid(c.pid, 0).unwrap().unwrap();
        assert_eq!(rec.code, Some(0));
        let got: Vec<String> = ends.into_iter().map(read_all).collect();
        // pipes[k] was passed at position 5-k, i.e. as fd 8-k.
        let want: Vec<String> = (0..6).map(|k| format!("{}\n", 8 - k)).collect();
        assert_eq!(got, want, "overlap exercised: {overlap}");
        // Only 0-8 (and ls's own directory fd 9) reach the child; log_fd still is stdout.
        assert_eq!(read_all(log_r), "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\nlog\n");
    }

    #[test]
    fn pass_fds_bad_descriptor_is_reported() {
        let _g = children_lock();
        let mut spec = SpawnSpec::new("/bin/true", &["true"]);
        spec.pass_fds = vec![0, 999_999];
        let e = spawn(&spec).unwrap_err();
        assert_eq!(
            (e.errno, e.context.as_str()),
            (libc::EBADF, "pass_fds 999999")
        );
        spec.pass_fds = vec![-1];
        assert_eq!(spawn(&spec).unwrap_err().errno, libc::EINVAL);
        assert!(no_children_left());
    }

    /// The environment of a running child. The vfork parent resumes in exec a moment before the
    /// child drops our memory (so /proc/<pid>/environ may still show ours) and before the new
    /// image has its environment: wait for it.
    fn environ(pid: i32) -> Vec<String> {
        let ours = std::fs::read("/proc/self/environ").unwrap();
        let read = || -> Vec<String> {
            let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
            if raw == ours {
                return Vec::new();
            }
            raw.split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        };
        wait_until("the environment of the new image", || !read().is_empty());
        read()
    }

    #[test]
    fn listen_pid_is_the_childs_own_pid() {
        let _g = children_lock();
        let mut spec = SpawnSpec::new("/bin/sleep", &["sleep", "10"]);
        spec.env = vec!["LISTEN_PID=1".into(), "LISTEN_FDS=1".into()];
        spec.listen_pid = true;
        let a = spawn(&spec).unwrap();
        let b = spawn(&spec).unwrap();
        let (env_a, env_b) = (environ(a.pid), environ(b.pid));
        let (pid_a, pid_b) = (a.pid, b.pid);
        kill_and_reap(a);
        kill_and_reap(b);
        assert_eq!(
            env_a,
            ["LISTEN_FDS=1".to_string(), format!("LISTEN_PID={pid_a}")]
        );
        assert_eq!(
            env_b,
            ["LISTEN_FDS=1".to_string(), format!("LISTEN_PID={pid_b}")]
        );
        // Without the flag the environment is passed as given.
        spec.listen_pid = false;
        let c = spawn(&spec).unwrap();
        let env_c = environ(c.pid);
        kill_and_reap(c);
        assert_eq!(env_c, ["LISTEN_PID=1", "LISTEN_FDS=1"]);
    }

    #[test]
    fn pid_digits_are_written_without_padding() {
        let mut buf = [0xffu8; PID_DIGITS];
        for (pid, want) in [
            (1, "1"),
            (40, "40"),
            (4_194_304, "4194304"),
            (2_147_483_647, "2147483647"),
        ] {
            // SAFETY: buf has PID_DIGITS bytes.
            unsafe { crate::preexec::write_pid_for_test(buf.as_mut_ptr(), pid) };
            let end = buf.iter().position(|&b| b == 0).unwrap();
            assert_eq!(std::str::from_utf8(&buf[..end]).unwrap(), want);
        }
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
