//! The only code that runs between clone and exec.
//!
//! The child shares the parent's memory (CLONE_VM) while the parent is suspended (CLONE_VFORK), so
//! everything here must be async-signal-safe: no allocation, no locks, no panics, no NSS. Identity
//! changes use raw syscalls: glibc's setuid() family would broadcast to the parent's threads.
//! A failure is written into the shared [`ChildCtx`] and the child exits with 127.

use libc::{c_char, c_int, c_long, c_void, gid_t};
use std::sync::atomic::{AtomicI32, Ordering};

/// Which step of the child setup failed.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Ok = 0,
    Sigmask,
    Setsid,
    Setgroups,
    Setgid,
    Setuid,
    Chdir,
    OpenLog,
    OpenNull,
    Dup,
    CloseFds,
    Exec,
}

impl Stage {
    pub fn from_i32(v: i32) -> Stage {
        const ALL: [Stage; 12] = [
            Stage::Ok,
            Stage::Sigmask,
            Stage::Setsid,
            Stage::Setgroups,
            Stage::Setgid,
            Stage::Setuid,
            Stage::Chdir,
            Stage::OpenLog,
            Stage::OpenNull,
            Stage::Dup,
            Stage::CloseFds,
            Stage::Exec,
        ];
        ALL.into_iter()
            .find(|s| *s as i32 == v)
            .unwrap_or(Stage::Exec)
    }
}

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
    /// Written by the child on failure, read by the parent after clone returns.
    pub stage: AtomicI32,
    pub errno: AtomicI32,
}

type Step<T> = Result<T, (Stage, c_int)>;

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
    // Both fds are >= 3 (see `open`), so dup3 never sees oldfd == newfd and the copies drop CLOEXEC.
    dup3(null, 0)?;
    dup3(out, 1)?;
    dup3(out, 2)?;

    let r = libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    if r == -1 && *libc::__errno_location() == libc::ENOSYS {
        for fd in 3..1024 {
            libc::syscall(libc::SYS_close, fd);
        }
    } else {
        check(Stage::CloseFds, r)?;
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
    Ok(check(
        stage,
        libc::syscall(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, 3),
    )? as c_int)
}

unsafe fn dup3(old: c_int, new: c_int) -> Step<()> {
    check(Stage::Dup, libc::syscall(libc::SYS_dup3, old, new, 0))?;
    Ok(())
}
