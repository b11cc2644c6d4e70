//! clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP): a vfork-style child that is
//! born in a cgroup.
//!
//! Writing to `cgroup.procs` migrates a task, and the kernel's cgroup_threadgroup_rwsem write side
//! then waits for an RCU grace period (10-15 ms after a quiet spell) while our vfork parent is
//! suspended. With CLONE_INTO_CGROUP nothing is migrated: the child starts in the target cgroup.
//!
//! libc has no clone3 wrapper that takes a function (glibc's is internal), and with CLONE_VM the
//! child returns from the syscall instruction on its own stack, where no Rust frame exists. So the
//! syscall and the child's first steps are one inline-asm block per architecture, as glibc's
//! sysdeps/unix/sysv/linux/{x86_64,aarch64}/clone3.S: in the child clear the frame pointer,
//! align the stack, call `f(arg)` and trap if it ever returns.

use libc::{c_int, c_void};

/// include/uapi/linux/sched.h; not in every libc target, and c_int-typed where it is.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` up to CLONE_ARGS_SIZE_VER2 (88 bytes, Linux 5.7: the `cgroup` field).
#[repr(C, align(8))]
#[derive(Debug, Default, Clone, Copy)]
pub struct CloneArgs {
    pub flags: u64,
    /// Where the kernel writes the pidfd (an int) with CLONE_PIDFD.
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    /// Signal sent to the parent on the child's exit; not part of `flags` for clone3.
    pub exit_signal: u64,
    /// Lowest address of the child's stack; the kernel starts it at `stack + stack_size`.
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    /// A cgroup v2 directory descriptor, with CLONE_INTO_CGROUP.
    pub cgroup: u64,
}

/// What the child runs; it must not return (it execs or `_exit`s).
pub type ChildFn = extern "C" fn(*mut c_void) -> c_int;

/// Whether this build has the trampoline; elsewhere [`clone3_vm`] fails with ENOSYS.
pub const SUPPORTED: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// clone3 with `args`, running `f(arg)` in the child on `args.stack`. Returns the child's pid in
/// the parent, or the errno (ENOSYS without the syscall, E2BIG/EINVAL for what the kernel does
/// not know).
///
/// # Safety
/// `args.flags` must contain CLONE_VM and CLONE_VFORK and `args.stack`/`stack_size` describe
/// writable memory with a 16-byte aligned end that stays valid until the child has exec'd or
/// exited (the parent is suspended until then). `f` must not return and must be
/// async-signal-safe, as must everything it calls, since it runs in our memory. Signals should be
/// blocked, so that no handler of ours runs in the child.
pub unsafe fn clone3_vm(args: &mut CloneArgs, f: ChildFn, arg: *mut c_void) -> Result<i32, c_int> {
    let r = raw_clone3(args, std::mem::size_of::<CloneArgs>(), f, arg);
    if r < 0 {
        // -4095..-1 is an errno; the kernel returns nothing else below zero.
        Err((-r) as c_int)
    } else {
        Ok(r as i32)
    }
}

#[cfg(target_arch = "x86_64")]
unsafe fn raw_clone3(args: *mut CloneArgs, size: usize, f: ChildFn, arg: *mut c_void) -> isize {
    let ret: isize;
    // SAFETY (for the caller's contract above): the kernel preserves every register but rax,
    // rcx and r11, so in the child rdx and r8 still hold f and arg; rsp is the new stack. The
    // child's path never leaves the block, so it may use rbp and the stack freely.
    core::arch::asm!(
        "syscall",
        "test rax, rax",
        "jnz 2f",
        // Child: mark the outermost frame, keep rsp 16-byte aligned at the call (SysV), trap if
        // f returns.
        "xor ebp, ebp",
        "and rsp, -16",
        "mov rdi, r8",
        "call rdx",
        "ud2",
        "2:",
        inlateout("rax") libc::SYS_clone3 as isize => ret,
        in("rdi") args,
        in("rsi") size,
        in("rdx") f,
        in("r8") arg,
        lateout("rcx") _,
        lateout("r11") _,
    );
    ret
}

#[cfg(target_arch = "aarch64")]
unsafe fn raw_clone3(args: *mut CloneArgs, size: usize, f: ChildFn, arg: *mut c_void) -> isize {
    let ret: isize;
    // SAFETY (for the caller's contract above): svc preserves every register but x0, so in the
    // child x2 and x3 still hold f and arg; sp is the new stack. The child's path never leaves
    // the block, so it may use x29/x30 and the stack freely.
    core::arch::asm!(
        "svc 0",
        "cbnz x0, 2f",
        // Child: mark the outermost frame (fp and lr zero), keep sp 16-byte aligned (AAPCS64),
        // trap if f returns.
        "mov x29, xzr",
        "mov x30, xzr",
        "mov x9, sp",
        "and x9, x9, #-16",
        "mov sp, x9",
        "mov x0, x3",
        "blr x2",
        "brk #0x3e8",
        "2:",
        inlateout("x0") args => ret,
        in("x1") size,
        in("x2") f,
        in("x3") arg,
        in("x8") libc::SYS_clone3,
        // Only the child's path writes x9; declared so the parent's view is exact either way.
        lateout("x9") _,
    );
    ret
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn raw_clone3(_: *mut CloneArgs, _: usize, _: ChildFn, _: *mut c_void) -> isize {
    -(libc::ENOSYS as isize)
}
