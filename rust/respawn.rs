//! Respawn without the event loop: a thread that waits on the pidfds of copies armed for an
//! immediate restart, collects each exit, applies the restart-at-once rule and spawns the next
//! copy, then tells Python through an eventfd.
//!
//! Python owns every pidfd and all state: it arms a copy (when no stop, reload, lock, flap
//! detection or tree kill concerns it), disarms it before it acts on it, and turns each event
//! into its bookkeeping (row, history, hooks). This thread never closes a descriptor: the pidfd
//! of a copy it replaced goes back in the event, so a number Python still holds cannot be reused.

use crate::error::{errno, Error, Result};
use crate::reaper::{self, ExitRecord};
use crate::spawn::{spawn_in_cgroup, Rlimit, SpawnSpec};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// What a spawn needs, packed: every string in one allocation (10,000 of these live in pmond).
#[derive(Debug)]
pub struct Recipe {
    /// file, argv..., env..., then cwd and log_path when set, back to back.
    bytes: Box<[u8]>,
    /// End offset of each string in `bytes`.
    ends: Box<[u32]>,
    argc: u32,
    envc: u32,
    has_cwd: bool,
    has_log: bool,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<Box<[u32]>>,
    rlimits: Box<[Rlimit]>,
    pass_fds: Box<[i32]>,
    listen_pid: bool,
}

impl Recipe {
    /// `spec` packed; its umask, log_fd and cgroup descriptors are a single spawn's, not kept.
    pub fn new(spec: &SpawnSpec) -> Result<Recipe> {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        let mut push = |s: &OsStr| -> Result<()> {
            bytes.extend_from_slice(s.as_bytes());
            ends.push(
                u32::try_from(bytes.len())
                    .map_err(|_| Error::invalid("spawn arguments are too long"))?,
            );
            Ok(())
        };
        push(&spec.file)?;
        for s in spec.argv.iter().chain(spec.env.iter()) {
            push(s)?;
        }
        if let Some(cwd) = &spec.cwd {
            push(cwd.as_os_str())?;
        }
        if let Some(log) = &spec.log_path {
            push(log.as_os_str())?;
        }
        let count = |n: usize| u32::try_from(n).map_err(|_| Error::invalid("too many arguments"));
        Ok(Recipe {
            bytes: bytes.into_boxed_slice(),
            ends: ends.into_boxed_slice(),
            argc: count(spec.argv.len())?,
            envc: count(spec.env.len())?,
            has_cwd: spec.cwd.is_some(),
            has_log: spec.log_path.is_some(),
            uid: spec.uid,
            gid: spec.gid,
            groups: spec.groups.as_ref().map(|g| g.clone().into_boxed_slice()),
            rlimits: spec.rlimits.clone().into_boxed_slice(),
            pass_fds: spec.pass_fds.clone().into_boxed_slice(),
            listen_pid: spec.listen_pid,
        })
    }

    fn string(&self, i: usize) -> OsString {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        OsStr::from_bytes(&self.bytes[start..self.ends[i] as usize]).to_owned()
    }

    /// The spec to spawn, unpacked.
    pub fn spec(&self, child_first: bool) -> SpawnSpec {
        let (argc, envc) = (self.argc as usize, self.envc as usize);
        let mut next = 1 + argc + envc;
        let mut optional = |present: bool| {
            present.then(|| {
                next += 1;
                PathBuf::from(self.string(next - 1))
            })
        };
        let cwd = optional(self.has_cwd);
        let log_path = optional(self.has_log);
        SpawnSpec {
            file: self.string(0),
            argv: (1..1 + argc).map(|i| self.string(i)).collect(),
            env: (1 + argc..1 + argc + envc)
                .map(|i| self.string(i))
                .collect(),
            cwd,
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.as_ref().map(|g| g.to_vec()),
            log_path,
            log_fd: None,
            umask: None,
            cgroup_fd: None,
            cgroup_procs_fd: None,
            rlimits: self.rlimits.to_vec(),
            pass_fds: self.pass_fds.to_vec(),
            listen_pid: self.listen_pid,
            child_first,
        }
    }
}

/// policy.restarts_at_once for one copy: restart now unless it ran less than `min_uptime` or (with
/// on-failure) ended with one of its success codes. A policy of "never" is never armed.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub on_failure: bool,
    pub min_uptime: f64,
    pub success_codes: Box<[i32]>,
}

impl Rule {
    pub fn restarts_at_once(&self, uptime: f64, code: Option<i32>, signal: Option<i32>) -> bool {
        if uptime < self.min_uptime {
            return false;
        }
        !(self.on_failure
            && signal.is_none()
            && code.is_some_and(|c| self.success_codes.contains(&c)))
    }
}

/// An armed copy: which process to watch and how to replace it.
pub struct Armed {
    pub pid: i32,
    /// Python's; borrowed here, never closed here.
    pub pidfd: RawFd,
    /// CLOCK_MONOTONIC seconds (Python's time.monotonic()).
    pub started: f64,
    pub recipe: Arc<Recipe>,
    /// The copy's cgroup v2 directory, and whether the child joins it through `cgroup.procs`.
    pub cgroup_dir: Box<OsStr>,
    pub cgroup_procs: bool,
    pub rule: Arc<Rule>,
}

/// What happened to an armed copy.
#[derive(Debug)]
pub struct Event {
    pub token: u64,
    pub old_pid: i32,
    /// Python's pidfd of the old copy (to close).
    pub old_pidfd: RawFd,
    /// None: lost (collected by someone else, e.g. a wait4(-1) sweep, or waitid failed).
    pub exit: Option<ExitRecord>,
    pub ended: f64,
    /// The new copy (pid, pidfd now Python's, CLOCK_MONOTONIC start), when it was respawned.
    pub new: Option<(i32, RawFd, f64)>,
    /// The new copy is still armed (filled in when Python takes the event).
    pub armed: bool,
}

struct Slot {
    generation: u32,
    armed: Option<Armed>,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    events: Vec<Event>,
    last_respawn: f64,
    last_rule: Option<Arc<Rule>>,
}

impl Table {
    fn token(&self, slot: u32) -> u64 {
        (u64::from(self.slots[slot as usize].generation) << 32) | u64::from(slot)
    }

    /// The slot of a token that is still current.
    fn slot(&self, token: u64) -> Option<usize> {
        let slot = (token & 0xffff_ffff) as usize;
        let s = self.slots.get(slot)?;
        (u64::from(s.generation) == token >> 32 && s.armed.is_some()).then_some(slot)
    }

    fn release(&mut self, slot: usize) -> Option<Armed> {
        let s = &mut self.slots[slot];
        let armed = s.armed.take();
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot as u32);
        armed
    }
}

struct Shared {
    epoll: OwnedFd,
    /// Readable while events wait for Python (its loop watches it).
    notify: OwnedFd,
    /// Ends the thread.
    stop: OwnedFd,
    table: Mutex<Table>,
    /// A respawn within this many seconds of the last one does not wait for its child's exec.
    burst_gap: f64,
    trace_fd: RawFd,
    /// False once the thread has ended (closed, or an error or a bug ended it).
    running: AtomicBool,
}

const STOP_TOKEN: u64 = u64::MAX;

/// The respawning thread and its table of armed copies.
pub struct Respawner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

// -- the raw calls, each wrapped once ----------------------------------------------------------------

fn owned(fd: libc::c_int, what: &str) -> Result<OwnedFd> {
    if fd < 0 {
        return Err(Error::last(what));
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn eventfd() -> Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    owned(
        unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) },
        "eventfd",
    )
}

fn eventfd_signal(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a local. EAGAIN (counter full) still leaves it readable.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

fn eventfd_clear(fd: &OwnedFd) {
    let mut count: u64 = 0;
    // SAFETY: reads 8 bytes into a local; EAGAIN when it was not signalled.
    unsafe { libc::read(fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
}

fn epoll_ctl(epoll: &OwnedFd, op: libc::c_int, fd: RawFd, token: u64) -> Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: a valid event struct; the kernel copies it.
    if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut ev) } == -1 {
        return Err(Error::last(format!("epoll_ctl {fd}")));
    }
    Ok(())
}

fn epoll_wait(epoll: &OwnedFd, out: &mut [libc::epoll_event]) -> Result<usize> {
    let max = libc::c_int::try_from(out.len()).unwrap_or(libc::c_int::MAX);
    loop {
        // SAFETY: `out` is valid for `max` events.
        let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), out.as_mut_ptr(), max, -1) };
        if n >= 0 {
            return Ok(n as usize);
        }
        if errno() != libc::EINTR {
            return Err(Error::last("epoll_wait"));
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds (Python's time.monotonic_ns()).
pub fn monotonic_ns() -> i64 {
    // SAFETY: timespec is plain old data; CLOCK_MONOTONIC cannot fail.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to local storage.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn monotonic() -> f64 {
    monotonic_ns() as f64 / 1e9
}

/// One PMON3_TRACE line ("<ns> <event> <pid>"), as supervisor.py writes them.
fn trace(fd: RawFd, event: &str, pid: i32) {
    if fd >= 0 {
        let line = format!("{} {event} {pid}\n", monotonic_ns());
        // SAFETY: writes from a local buffer; a failed stamp is not worth an error.
        unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
    }
}

/// Block every signal in the calling thread: pmond's signals are its main thread's.
fn block_signals() {
    // SAFETY: sigset_t is plain old data, filled by sigfillset.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

impl Respawner {
    /// Start the thread. `trace_fd`: PMON3_TRACE's descriptor (borrowed), or -1.
    pub fn start(burst_gap: f64, trace_fd: RawFd) -> Result<Respawner> {
        // SAFETY: plain syscall with an integer argument.
        let epoll = owned(
            unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) },
            "epoll_create1",
        )?;
        let stop = eventfd()?;
        epoll_ctl(&epoll, libc::EPOLL_CTL_ADD, stop.as_raw_fd(), STOP_TOKEN)?;
        let shared = Arc::new(Shared {
            epoll,
            notify: eventfd()?,
            stop,
            table: Mutex::new(Table::default()),
            burst_gap,
            trace_fd,
            running: AtomicBool::new(true),
        });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("pmond-respawn".into())
            .spawn(move || run(&theirs))
            .map_err(|e| Error::new(e.raw_os_error().unwrap_or(libc::EAGAIN), "respawn thread"))?;
        Ok(Respawner {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The eventfd that is readable while events wait (for Python's loop).
    pub fn notify_fd(&self) -> RawFd {
        self.shared.notify.as_raw_fd()
    }

    /// Whether the thread still runs: once it has ended, armed copies are nobody's until disarmed (the
    /// notify eventfd becomes readable when it ends).
    pub fn running(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// Watch `armed`; its token for disarm().
    pub fn arm(&self, mut armed: Armed) -> Result<u64> {
        if !self.running() {
            return Err(Error::new(libc::ESRCH, "the respawn thread has ended"));
        }
        let mut table = lock(&self.shared.table);
        // Most copies share one rule (config.yml's): keep one of each run of equal rules.
        match &table.last_rule {
            Some(last) if **last == *armed.rule => armed.rule = Arc::clone(last),
            _ => table.last_rule = Some(Arc::clone(&armed.rule)),
        }
        let slot = match table.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(table.slots.len())
                    .map_err(|_| Error::invalid("too many armed copies"))?;
                table.slots.push(Slot {
                    generation: 0,
                    armed: None,
                });
                slot
            }
        };
        let token = table.token(slot);
        if let Err(e) = epoll_ctl(&self.shared.epoll, libc::EPOLL_CTL_ADD, armed.pidfd, token) {
            table.free.push(slot);
            return Err(e);
        }
        table.slots[slot as usize].armed = Some(armed);
        Ok(token)
    }

    /// Stop watching the copy of `token` (whatever copy it is by now); false when it was not
    /// armed any more. Events already made stay for take().
    pub fn disarm(&self, token: u64) -> bool {
        let mut table = lock(&self.shared.table);
        let Some(slot) = table.slot(token) else {
            return false;
        };
        if let Some(armed) = table.release(slot) {
            let _ = epoll_ctl(&self.shared.epoll, libc::EPOLL_CTL_DEL, armed.pidfd, 0);
        }
        true
    }

    /// Disarm every copy.
    pub fn disarm_all(&self) {
        let mut table = lock(&self.shared.table);
        for slot in 0..table.slots.len() {
            if let Some(pidfd) = table.slots[slot].armed.as_ref().map(|a| a.pidfd) {
                let _ = epoll_ctl(&self.shared.epoll, libc::EPOLL_CTL_DEL, pidfd, 0);
                table.release(slot);
            }
        }
    }

    /// The events so far, oldest first, each saying whether its new copy is still armed.
    pub fn take(&self) -> Vec<Event> {
        let mut table = lock(&self.shared.table);
        eventfd_clear(&self.shared.notify);
        let mut events = std::mem::take(&mut table.events);
        for ev in events.iter_mut() {
            if let Some((pid, _, _)) = ev.new {
                ev.armed = table
                    .slot(ev.token)
                    .and_then(|s| table.slots[s].armed.as_ref())
                    .is_some_and(|a| a.pid == pid);
            }
        }
        events
    }

    /// End the thread (every copy disarmed first). Idempotent.
    pub fn close(&self) {
        self.disarm_all();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            eventfd_signal(&self.shared.stop);
            let _ = thread.join();
        }
    }
}

impl Drop for Respawner {
    fn drop(&mut self) {
        self.close();
    }
}

/// The table's lock, taken even if a panic poisoned it: after a panic in the thread it is gone, and
/// Python only disarms what is left (releasing slots needs no consistency beyond each slot's own).
fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Marks the thread ended and wakes Python, however it ends (an error, or a panic unwinding).
struct Ended<'a>(&'a Shared);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::SeqCst);
        eventfd_signal(&self.0.notify);
    }
}

fn run(shared: &Shared) {
    let _ended = Ended(shared);
    block_signals();
    let mut ready = [libc::epoll_event { events: 0, u64: 0 }; 64];
    loop {
        let n = match epoll_wait(&shared.epoll, &mut ready) {
            Ok(n) => n,
            Err(_) => return,
        };
        let mut posted = false;
        for ev in &ready[..n] {
            let token = ev.u64;
            if token == STOP_TOKEN {
                return;
            }
            posted |= handle(shared, token);
        }
        if posted {
            eventfd_signal(&shared.notify);
        }
    }
}

/// An armed copy's pidfd is readable: collect it, and respawn it when its rule says so. Whether
/// an event was posted.
fn handle(shared: &Shared, token: u64) -> bool {
    let mut table = lock(&shared.table);
    let Some(slot) = table.slot(token) else {
        return false; // disarmed since epoll_wait returned
    };
    let Some(armed) = table.slots[slot].armed.as_ref() else {
        return false;
    };
    let (pid, pidfd, started, procs) = (armed.pid, armed.pidfd, armed.started, armed.cgroup_procs);
    let (recipe, rule) = (Arc::clone(&armed.recipe), Arc::clone(&armed.rule));
    let dir = armed.cgroup_dir.clone();
    trace(shared.trace_fd, "seen", pid);
    let exit = match reaper::reap_pidfd(pidfd, pid) {
        Ok(None) => return false, // still running: not for us yet
        Ok(Some(exit)) => Some(exit),
        Err(_) => None, // ECHILD: a sweep got it first; Python sorts it out
    };
    let ended = monotonic();
    let mut new = None;
    let mut watched = false;
    if let Some(exit) = &exit {
        let uptime = ended - started;
        if rule.restarts_at_once(uptime, exit.code, exit.signal) {
            // One restart: the child goes first; a storm: the next respawn does.
            let child_first = ended - table.last_respawn > shared.burst_gap;
            trace(shared.trace_fd, "spawn", 0);
            let spec = recipe.spec(child_first);
            if let Ok(child) = spawn_in_cgroup(&spec, &dir, procs, true) {
                let spawned = monotonic();
                trace(shared.trace_fd, "spawned", child.pid);
                let new_fd = child.pidfd.as_raw_fd();
                // Not watchable here (out of memory for epoll): Python's loop watches it instead.
                watched = epoll_ctl(&shared.epoll, libc::EPOLL_CTL_ADD, new_fd, token).is_ok();
                new = Some((child.pid, child.pidfd.into_raw_fd(), spawned));
                table.last_respawn = spawned;
            }
            // A failed spawn (EBUSY: leftovers in the cgroup; or the program is gone): Python's
            // general way retries it and says why.
        }
    }
    let _ = epoll_ctl(&shared.epoll, libc::EPOLL_CTL_DEL, pidfd, 0);
    match new {
        Some((new_pid, new_fd, spawned)) if watched => {
            if let Some(a) = table.slots[slot].armed.as_mut() {
                a.pid = new_pid;
                a.pidfd = new_fd;
                a.started = spawned;
            }
        }
        _ => {
            table.release(slot);
        }
    }
    table.events.push(Event {
        token,
        old_pid: pid,
        old_pidfd: pidfd,
        exit,
        ended,
        new,
        armed: false,
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_round_trip() {
        let mut spec = SpawnSpec::new("/bin/sleep", &["sleep", "5"]);
        spec.env = vec!["A=1".into(), "B=".into()];
        spec.log_path = Some("/tmp/x.log".into());
        spec.uid = Some(7);
        spec.groups = Some(vec![1, 2]);
        spec.listen_pid = true;
        let back = Recipe::new(&spec).map(|r| r.spec(true));
        let back = back.ok().filter(|b| b.child_first);
        let back = back.map(|b| {
            (
                b.file,
                b.argv,
                b.env,
                b.cwd,
                b.log_path,
                b.uid,
                b.groups,
                b.listen_pid,
            )
        });
        assert_eq!(
            back,
            Some((
                spec.file.clone(),
                spec.argv.clone(),
                spec.env.clone(),
                None,
                spec.log_path.clone(),
                Some(7),
                Some(vec![1, 2]),
                true
            ))
        );
        spec.cwd = Some("/".into());
        spec.log_path = None;
        let back = Recipe::new(&spec).map(|r| r.spec(false));
        assert_eq!(
            back.ok().map(|b| (b.cwd, b.log_path)),
            Some((Some("/".into()), None))
        );
    }

    #[test]
    fn rule_is_policy_restarts_at_once() {
        let always = Rule {
            on_failure: false,
            min_uptime: 1.0,
            success_codes: Box::new([0]),
        };
        assert!(always.restarts_at_once(1.0, Some(0), None));
        assert!(!always.restarts_at_once(0.5, Some(1), None));
        let on_failure = Rule {
            on_failure: true,
            ..always.clone()
        };
        assert!(!on_failure.restarts_at_once(2.0, Some(0), None));
        assert!(on_failure.restarts_at_once(2.0, Some(3), None));
        assert!(on_failure.restarts_at_once(2.0, None, Some(9)));
    }

    use crate::spawn::tests::{children_lock, pidfd_exited, wait_until, TempCgroup};
    use std::os::fd::BorrowedFd;

    fn readable(fd: RawFd, ms: libc::c_int) -> bool {
        // SAFETY: the descriptor is open for the whole call (the Respawner or our own).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let owned = fd.try_clone_to_owned();
        owned.is_ok_and(|o| pidfd_exited(&o, ms))
    }

    /// `child` armed, restarted by `recipe` into the cgroup `dir` under `rule`.
    fn armed(child: &crate::spawn::Spawned, recipe: Recipe, dir: &OsStr, rule: Rule) -> Armed {
        Armed {
            pid: child.pid,
            pidfd: child.pidfd.as_raw_fd(),
            started: monotonic(),
            recipe: Arc::new(recipe),
            cgroup_dir: dir.into(),
            cgroup_procs: false,
            rule: Arc::new(rule),
        }
    }

    fn close(fd: RawFd) {
        // SAFETY: a descriptor an event handed to us.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }

    #[test]
    fn respawns_an_armed_copy_until_disarmed() {
        let Some(cg) = TempCgroup::new("respawn") else {
            eprintln!("skipped: needs root and a writable cgroup2 mount");
            return;
        };
        let _g = children_lock();
        let spec = SpawnSpec::new("/bin/sleep", &["sleep", "30"]);
        let first = spawn_in_cgroup(&spec, cg.0.as_os_str(), false, false).unwrap();
        let r = Respawner::start(0.005, -1).unwrap();
        let rule = Rule {
            on_failure: false,
            min_uptime: 0.0,
            success_codes: Box::new([0]),
        };
        let recipe = Recipe::new(&spec).unwrap();
        let token = r
            .arm(armed(&first, recipe, cg.0.as_os_str(), rule))
            .unwrap();
        reaper::pidfd_send_signal(first.pidfd.as_raw_fd(), libc::SIGKILL).unwrap();
        assert!(readable(r.notify_fd(), 10_000), "no event after a kill");
        let events = r.take();
        assert_eq!(events.len(), 1);
        let ev = &events[0];
        assert_eq!((ev.token, ev.old_pid), (token, first.pid));
        assert_eq!(
            ev.exit.as_ref().map(|e| e.signal),
            Some(Some(libc::SIGKILL))
        );
        let (pid, pidfd, _) = ev.new.unwrap();
        assert!(ev.armed);
        assert_eq!(cg.pids(), vec![pid]); // the new copy, in the copy's cgroup
        drop(first.pidfd);
        // Disarmed: its end is ours to see and collect.
        assert!(r.disarm(token));
        assert!(!r.disarm(token));
        reaper::pidfd_send_signal(pidfd, libc::SIGKILL).unwrap();
        assert!(readable(pidfd, 10_000));
        assert_eq!(
            reaper::reap_pidfd(pidfd, pid).unwrap().map(|e| e.signal),
            Some(Some(libc::SIGKILL))
        );
        assert!(r.take().is_empty());
        close(pidfd);
        wait_until("an empty cgroup", || cg.pids().is_empty());
    }

    #[test]
    fn an_exit_the_rule_does_not_restart_goes_back_to_python() {
        let Some(cg) = TempCgroup::new("respawn-rule") else {
            eprintln!("skipped: needs root and a writable cgroup2 mount");
            return;
        };
        let _g = children_lock();
        let spec = SpawnSpec::new("/bin/sh", &["sh", "-c", "exit 0"]);
        let first = spawn_in_cgroup(&spec, cg.0.as_os_str(), false, false).unwrap();
        let r = Respawner::start(0.005, -1).unwrap();
        let rule = Rule {
            on_failure: true, // exit 0 is a success: no restart
            min_uptime: 0.0,
            success_codes: Box::new([0]),
        };
        let recipe = Recipe::new(&spec).unwrap();
        let token = r
            .arm(armed(&first, recipe, cg.0.as_os_str(), rule))
            .unwrap();
        assert!(readable(r.notify_fd(), 10_000), "no event after an exit");
        let events = r.take();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].exit.as_ref().map(|e| e.code), Some(Some(0)));
        assert!(events[0].new.is_none() && !events[0].armed);
        assert!(!r.disarm(token)); // released by the thread
        assert!(cg.pids().is_empty());
        r.close();
    }

    #[test]
    fn an_ended_thread_says_so_and_refuses_copies() {
        let r = Respawner::start(0.005, -1).unwrap();
        assert!(r.running());
        r.close();
        assert!(!r.running());
        assert!(readable(r.notify_fd(), 0)); // Python's loop wakes to find out
        let spec = SpawnSpec::new("/bin/true", &["true"]);
        let e = r.arm(Armed {
            pid: 1,
            pidfd: r.notify_fd(),
            started: 0.0,
            recipe: Arc::new(Recipe::new(&spec).unwrap()),
            cgroup_dir: OsStr::new("/nonexistent").into(),
            cgroup_procs: false,
            rule: Arc::new(Rule {
                on_failure: false,
                min_uptime: 0.0,
                success_codes: Box::new([0]),
            }),
        });
        assert_eq!(e.map_err(|e| e.errno), Err(libc::ESRCH));
    }
}
