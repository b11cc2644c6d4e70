//! The only code that runs between clone and exec.
//!
//! The child shares the parent's memory (CLONE_VM) while the parent is suspended (CLONE_VFORK), so
//! everything here must be async-signal-safe: no allocation, no locks, no panics, no NSS. Identity
//! changes use raw syscalls: glibc's setuid() family would broadcast to the parent's threads.
//! A failure is written into the shared [`ChildCtx`] and the child exits with 127.
//!
//! Order: signal dispositions and mask, setsid, with a shared descriptor table (CLONE_FILES) a
//! private one holding 0-2 only, cgroup move (the `cgroup.procs` fallback; with
//! CLONE_INTO_CGROUP the child is born there) and rlimits (while still privileged),
//! groups/gid/uid, chdir, umask, log and /dev/null (as the target user), pass_fds, stdio,
//! close_range, LISTEN_PID, execve.

use libc::{c_char, c_int, c_long, c_void, gid_t};
use std::sync::atomic::{AtomicI32, Ordering};

/// Which step of the child setup failed.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Ok = 0,
    Sigmask,
    Setsid,
    /// Back to SCHED_OTHER (see `ChildCtx::reset_policy`).
    Sched,
    Cgroup,
    /// `ChildCtx::detail` is the index into `rlimits`.
    Setrlimit,
    Setgroups,
    Setgid,
    Setuid,
    Chdir,
    OpenLog,
    OpenNull,
    /// `ChildCtx::detail` is the index into `pass_fds`.
    PassFds,
    Dup,
    CloseFds,
    Exec,
}

impl Stage {
    pub fn from_i32(v: i32) -> Stage {
        const ALL: [Stage; 16] = [
            Stage::Ok,
            Stage::Sigmask,
            Stage::Setsid,
            Stage::Sched,
            Stage::Cgroup,
            Stage::Setrlimit,
            Stage::Setgroups,
            Stage::Setgid,
            Stage::Setuid,
            Stage::Chdir,
            Stage::OpenLog,
            Stage::OpenNull,
            Stage::PassFds,
            Stage::Dup,
            Stage::CloseFds,
            Stage::Exec,
        ];
        ALL.into_iter()
            .find(|s| *s as i32 == v)
            .unwrap_or(Stage::Exec)
    }
}

/// One resource limit for prlimit64; `u64::MAX` (RLIM64_INFINITY) is unlimited.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: c_int,
    pub soft: u64,
    pub hard: u64,
}

/// close_range(2) flag (include/uapi/linux/close_range.h, Linux 5.9): unshare the descriptor table
/// first, copying only the descriptors below the range.
pub const CLOSE_RANGE_UNSHARE: u32 = 1 << 1;

/// Room for the decimal digits of any pid (pid_max <= 2^22, but a pid is an i32) and a NUL.
pub const PID_DIGITS: usize = 11;

/// Everything the child needs, prepared by the parent; raw pointers stay valid because the parent
/// is suspended until the child has exec'd or exited.
pub struct ChildCtx {
    pub file: *const c_char,
    pub argv: *const *const c_char,
    pub envp: *const *const c_char,
    /// Null: keep the working directory.
    pub cwd: *const c_char,
    /// Null: stdout and stderr go to /dev/null (unless `log_fd` is set).
    pub log: *const c_char,
    /// >= 3: an inherited descriptor (e.g. a pipe) used as stdout and stderr instead of `log`.
    pub log_fd: c_int,
    pub set_groups: bool,
    pub groups: *const gid_t,
    pub ngroups: usize,
    pub gid: Option<u32>,
    pub uid: Option<u32>,
    pub umask: Option<u32>,
    /// >= 0: the caller's descriptor on a cgroup v2 `cgroup.procs`; the child writes "0" to it.
    pub cgroup_procs_fd: c_int,
    pub rlimits: *const Rlimit,
    pub nrlimits: usize,
    /// Caller descriptors that become 3, 4, ... in the child, in this order.
    pub pass_fds: *const c_int,
    pub npass: usize,
    /// Scratch of `npass` ints in the parent's memory for the temporary copies of `pass_fds`
    /// (the child cannot allocate).
    pub pass_tmp: *mut c_int,
    /// Non-null: [`PID_DIGITS`] bytes right after "LISTEN_PID=" in one of the `envp` strings,
    /// filled by the child with its pid and a NUL. Per spawn: this is the parent's memory.
    pub listen_pid: *mut u8,
    /// The child was cloned with CLONE_FILES: it shares our descriptor table until it takes a
    /// private one with only 0-2 in it (close_range with CLOSE_RANGE_UNSHARE), before it touches
    /// any descriptor. Without it the clone copies all of our descriptors and the child closes
    /// them again: +1 ms per spawn with 10,000 open (one pidfd per supervised process).
    pub shares_files: bool,
    /// The parent cloned us as SCHED_BATCH (spawn's `child_first`): the child takes SCHED_OTHER
    /// back first thing, so the program runs with the policy the parent normally has.
    pub reset_policy: bool,
    /// Written by the child on failure, read by the parent after clone returns.
    pub stage: AtomicI32,
    pub errno: AtomicI32,
    /// Which item of a list-driven stage failed (see [`Stage`]).
    pub detail: AtomicI32,
}

type Step<T> = Result<T, (Stage, c_int)>;

/// The failing item of a list-driven stage goes to `ctx.detail`.
fn at<T>(ctx: &ChildCtx, index: usize, r: Step<T>) -> Step<T> {
    if r.is_err() {
        ctx.detail.store(index as i32, Ordering::SeqCst);
    }
    r
}

/// One raw syscall result -> the errno on failure.
fn check(stage: Stage, r: c_long) -> Step<c_long> {
    if r == -1 {
        // SAFETY: errno location of the current thread (shared TLS with the suspended parent).
        Err((stage, unsafe { *libc::__errno_location() }))
    } else {
        Ok(r)
    }
}

/// Entry point of the cloned child.
pub extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's ChildCtx, alive while the parent waits in clone.
    let ctx = unsafe { &*(arg as *const ChildCtx) };
    // SAFETY: only raw syscalls on pointers prepared by the parent.
    let (stage, errno) = match unsafe { setup_and_exec(ctx) } {
        Err(failure) => failure,
        Ok(()) => (Stage::Exec, libc::EINVAL), // execve returned without error: cannot happen
    };
    ctx.errno.store(errno, Ordering::SeqCst);
    ctx.stage.store(stage as i32, Ordering::SeqCst);
    // SAFETY: terminates only the child (no CLONE_THREAD), without running atexit handlers.
    unsafe { libc::_exit(127) }
}

unsafe fn setup_and_exec(ctx: &ChildCtx) -> Step<()> {
    // Default dispositions (Python ignores SIGPIPE, the daemon catches SIGTERM...). Signals are
    // still blocked here, so no parent handler can run on this shared memory. Raw rt_sigaction:
    // glibc's wrapper refuses its internal signals 32/33, which may be inherited as ignored. An
    // all-zero kernel sigaction is SIG_DFL with no flags and an empty mask on every layout.
    let dfl = [0u64; 8];
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::syscall(libc::SYS_rt_sigaction, sig, dfl.as_ptr(), 0usize, 8usize);
        }
    }
    let empty: u64 = 0;
    check(
        Stage::Sigmask,
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            0usize,
            8usize,
        ),
    )?;
    check(Stage::Setsid, libc::syscall(libc::SYS_setsid))?;
    if ctx.reset_policy {
        let param = libc::sched_param { sched_priority: 0 };
        let r = libc::syscall(
            libc::SYS_sched_setscheduler,
            0,
            libc::SCHED_OTHER,
            &param as *const libc::sched_param,
        );
        check(Stage::Sched, r)?;
    }
    if ctx.shares_files {
        // Nothing below may touch the parent's table: from here the child has its own, 0-2 only.
        let r = libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_UNSHARE);
        check(Stage::CloseFds, r)?;
    }

    // Before the identity switch: the move into the cgroup and raising a hard limit need the
    // caller's privileges. Right after setsid, so that everything the child starts is born there.
    if ctx.cgroup_procs_fd >= 0 {
        let r = libc::syscall(libc::SYS_write, ctx.cgroup_procs_fd, c"0".as_ptr(), 1usize);
        check(Stage::Cgroup, r)?;
    }
    for i in 0..ctx.nrlimits {
        let rl = &*ctx.rlimits.add(i);
        let lim: [u64; 2] = [rl.soft, rl.hard];
        let r = libc::syscall(
            libc::SYS_prlimit64,
            0,
            rl.resource,
            lim.as_ptr(),
            std::ptr::null_mut::<u64>(),
        );
        at(ctx, i, check(Stage::Setrlimit, r))?;
    }

    if ctx.set_groups {
        check(
            Stage::Setgroups,
            libc::syscall(libc::SYS_setgroups, ctx.ngroups, ctx.groups),
        )?;
    }
    if let Some(gid) = ctx.gid {
        check(Stage::Setgid, libc::syscall(libc::SYS_setgid, gid))?;
    }
    if let Some(uid) = ctx.uid {
        check(Stage::Setuid, libc::syscall(libc::SYS_setuid, uid))?;
    }
    if !ctx.cwd.is_null() {
        check(Stage::Chdir, libc::syscall(libc::SYS_chdir, ctx.cwd))?;
    }
    if let Some(mask) = ctx.umask {
        libc::syscall(libc::SYS_umask, mask);
    }

    // Opened after the identity switch: the log is created by and checked against the target user.
    let out = if ctx.log_fd >= 3 {
        ctx.log_fd
    } else if ctx.log.is_null() {
        open(
            Stage::OpenLog,
            c"/dev/null".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
            0,
        )?
    } else {
        let flags =
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        open(Stage::OpenLog, ctx.log, flags, 0o640)?
    };
    let null = open(
        Stage::OpenNull,
        c"/dev/null".as_ptr(),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    )?;
    // pass_fds, step 1: copy every source above the target range 3..3+n first, so that no dup
    // into place overwrites a source still to be moved (e.g. pass_fds=[4, 3]), and before stdin is
    // set up, which would overwrite a source sitting on 0.
    let first_free = 3 + ctx.npass as c_int;
    for i in 0..ctx.npass {
        let src = *ctx.pass_fds.add(i);
        let r = dupfd_cloexec(src, first_free);
        *ctx.pass_tmp.add(i) = at(ctx, i, check(Stage::PassFds, r))? as c_int;
    }
    // Both fds are >= 3 (see `open`), so dup3 never sees oldfd == newfd and the copies drop CLOEXEC.
    dup3(null, 0)?;
    dup3(out, 1)?;
    dup3(out, 2)?;
    // Step 2: the copies are >= 3+n, so never equal to their target; dup3 without flags leaves
    // the target inheritable. `out`, `null` and `log_fd` may be overwritten now: 0-2 hold them.
    for i in 0..ctx.npass {
        let r = raw_dup3(*ctx.pass_tmp.add(i), 3 + i as c_int);
        at(ctx, i, check(Stage::PassFds, r))?;
    }

    let r = libc::syscall(libc::SYS_close_range, first_free as u32, u32::MAX, 0u32);
    if r == -1 && *libc::__errno_location() == libc::ENOSYS {
        for fd in first_free..1024 {
            libc::syscall(libc::SYS_close, fd);
        }
    } else {
        check(Stage::CloseFds, r)?;
    }

    if !ctx.listen_pid.is_null() {
        write_pid(ctx.listen_pid, libc::syscall(libc::SYS_getpid));
    }

    check(
        Stage::Exec,
        libc::syscall(libc::SYS_execve, ctx.file, ctx.argv, ctx.envp),
    )?;
    Ok(())
}

/// openat(AT_FDCWD) returning an fd >= 3, even when the parent runs with 0/1/2 closed.
unsafe fn open(stage: Stage, path: *const c_char, flags: c_int, mode: libc::mode_t) -> Step<c_int> {
    let fd = check(
        stage,
        libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path, flags, mode),
    )? as c_int;
    if fd >= 3 {
        return Ok(fd);
    }
    // The low fd is overwritten by the dup3 calls below, so it need not be closed.
    Ok(check(stage, dupfd_cloexec(fd, 3))? as c_int)
}

/// fcntl(F_DUPFD_CLOEXEC): the lowest free descriptor >= `min`.
unsafe fn dupfd_cloexec(fd: c_int, min: c_int) -> c_long {
    libc::syscall(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, min)
}

/// dup3 without flags: the copy is inheritable across exec.
unsafe fn raw_dup3(old: c_int, new: c_int) -> c_long {
    libc::syscall(libc::SYS_dup3, old, new, 0)
}

/// `pid` in decimal without leading zeros, NUL-terminated, into `dst` ([`PID_DIGITS`] bytes).
/// No slicing or indexing that could panic.
unsafe fn write_pid(dst: *mut u8, pid: c_long) {
    let mut digits = [0u8; PID_DIGITS - 1];
    let mut v = pid.max(0) as u64;
    let mut len = 0;
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        len += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = digits.len().saturating_sub(len);
    let mut out = dst;
    for d in digits.iter().skip(start) {
        *out = *d;
        out = out.add(1);
    }
    *out = 0;
}

#[cfg(test)]
pub(crate) unsafe fn write_pid_for_test(dst: *mut u8, pid: c_long) {
    write_pid(dst, pid)
}

unsafe fn dup3(old: c_int, new: c_int) -> Step<()> {
    check(Stage::Dup, raw_dup3(old, new))?;
    Ok(())
}
