//! The Python face of the crate: argument conversion, OSError mapping, GIL release around
//! anything that can block. Signatures follow python/pmon3/_native.pyi exactly.

use crate::error::Error;
use crate::fsas::{self, Creds};
use crate::inotify::{self, Inotify};
use crate::mq::{MessageQueue, OpenOptions};
use crate::{files, jsonfmt, mqlist, reaper, respawn, sockets, spawn as sp};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::ffi::OsString;
use std::os::fd::IntoRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl From<Error> for PyErr {
    /// OSError(errno, message): Python picks the subclass (FileNotFoundError...) from errno.
    fn from(e: Error) -> PyErr {
        PyOSError::new_err((e.errno, e.message()))
    }
}

type ExitTuple = (i32, Option<i32>, Option<i32>, f64, f64, i64, bool);

/// An exit as Python's ExitInfo takes it (the field order of models.ExitInfo).
fn exit_tuple(r: reaper::ExitRecord) -> ExitTuple {
    (
        r.pid,
        r.code,
        r.signal,
        r.utime,
        r.stime,
        r.maxrss_kib,
        r.core_dumped,
    )
}

/// A Python limit -> prlimit64's: -1 (resource.RLIM_INFINITY) or 2**64-1 is unlimited.
fn rlimit_value(v: i128) -> Result<u64, Error> {
    match v {
        -1 => Ok(sp::RLIM_INFINITY),
        v => u64::try_from(v).map_err(|_| {
            Error::invalid(format!(
                "rlimits: {v} is not a limit (>= 0, or -1 for unlimited)"
            ))
        }),
    }
}

#[pyfunction]
#[pyo3(signature = (
    file, argv, env, cwd=None, uid=None, gid=None, groups=None, log_path=None, umask=None,
    log_fd=None, *, cgroup_fd=None, cgroup_procs_fd=None, rlimits=None, pass_fds=None, listen_pid=false,
    child_first=false, cgroup_dir=None, cgroup_dir_procs=false, only_if_empty=false,
))]
#[allow(clippy::too_many_arguments)]
fn spawn(
    py: Python<'_>,
    file: PathBuf,
    argv: Vec<OsString>,
    env: Vec<OsString>,
    cwd: Option<PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<Vec<u32>>,
    log_path: Option<PathBuf>,
    umask: Option<u32>,
    log_fd: Option<i32>,
    cgroup_fd: Option<i32>,
    cgroup_procs_fd: Option<i32>,
    rlimits: Option<Vec<(i32, i128, i128)>>,
    pass_fds: Option<Vec<i32>>,
    listen_pid: bool,
    child_first: bool,
    cgroup_dir: Option<PathBuf>,
    cgroup_dir_procs: bool,
    only_if_empty: bool,
) -> PyResult<(i32, i32)> {
    let spec = sp::SpawnSpec {
        log_fd,
        umask,
        cgroup_fd,
        cgroup_procs_fd,
        child_first,
        ..launch_spec(
            file, argv, env, cwd, uid, gid, groups, log_path, rlimits, pass_fds, listen_pid,
        )?
    };
    spawn_spec(py, &spec, cgroup_dir, cgroup_dir_procs, only_if_empty)
}

/// What a process's launch says (spawn's arguments without the spawn's own: log_fd, umask, cgroup,
/// child_first), as spawn() and Launch take them.
#[allow(clippy::too_many_arguments)]
fn launch_spec(
    file: PathBuf,
    argv: Vec<OsString>,
    env: Vec<OsString>,
    cwd: Option<PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<Vec<u32>>,
    log_path: Option<PathBuf>,
    rlimits: Option<Vec<(i32, i128, i128)>>,
    pass_fds: Option<Vec<i32>>,
    listen_pid: bool,
) -> Result<sp::SpawnSpec, Error> {
    Ok(sp::SpawnSpec {
        file: file.into_os_string(),
        argv,
        env,
        cwd,
        uid,
        gid,
        groups,
        log_path,
        rlimits: rlimits_of(rlimits)?,
        pass_fds: pass_fds.unwrap_or_default(),
        listen_pid,
        ..Default::default()
    })
}

fn rlimits_of(rlimits: Option<Vec<(i32, i128, i128)>>) -> Result<Vec<sp::Rlimit>, Error> {
    rlimits
        .unwrap_or_default()
        .into_iter()
        .map(|(resource, soft, hard)| {
            Ok(sp::Rlimit {
                resource,
                soft: rlimit_value(soft)?,
                hard: rlimit_value(hard)?,
            })
        })
        .collect()
}

/// spawn's last step: `spec`, born in `cgroup_dir` when one is given; (pid, pidfd).
fn spawn_spec(
    py: Python<'_>,
    spec: &sp::SpawnSpec,
    cgroup_dir: Option<PathBuf>,
    cgroup_dir_procs: bool,
    only_if_empty: bool,
) -> PyResult<(i32, i32)> {
    let child = match cgroup_dir {
        None => py.detach(|| sp::spawn(spec))?,
        Some(dir) => py.detach(|| {
            sp::spawn_in_cgroup(spec, dir.as_os_str(), cgroup_dir_procs, only_if_empty)
        })?,
    };
    Ok((child.pid, child.pidfd.into_raw_fd()))
}

/// A process's launch, packed natively (respawn::Recipe): spawned from Python, or by the
/// Respawner without Python once armed.
#[pyclass(name = "Launch", module = "pmon3._native", frozen)]
struct PyLaunch {
    recipe: Arc<respawn::Recipe>,
}

#[pymethods]
impl PyLaunch {
    #[new]
    #[pyo3(signature = (
        file, argv, env, cwd=None, uid=None, gid=None, groups=None, log_path=None, *, rlimits=None,
        pass_fds=None, listen_pid=false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        file: PathBuf,
        argv: Vec<OsString>,
        env: Vec<OsString>,
        cwd: Option<PathBuf>,
        uid: Option<u32>,
        gid: Option<u32>,
        groups: Option<Vec<u32>>,
        log_path: Option<PathBuf>,
        rlimits: Option<Vec<(i32, i128, i128)>>,
        pass_fds: Option<Vec<i32>>,
        listen_pid: bool,
    ) -> PyResult<Self> {
        let spec = launch_spec(
            file, argv, env, cwd, uid, gid, groups, log_path, rlimits, pass_fds, listen_pid,
        )?;
        Ok(PyLaunch {
            recipe: Arc::new(respawn::Recipe::new(&spec)?),
        })
    }

    #[pyo3(signature = (
        *, child_first=false, cgroup_fd=None, cgroup_procs_fd=None, cgroup_dir=None,
        cgroup_dir_procs=false, only_if_empty=false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &self,
        py: Python<'_>,
        child_first: bool,
        cgroup_fd: Option<i32>,
        cgroup_procs_fd: Option<i32>,
        cgroup_dir: Option<PathBuf>,
        cgroup_dir_procs: bool,
        only_if_empty: bool,
    ) -> PyResult<(i32, i32)> {
        let mut spec = self.recipe.spec(child_first);
        spec.cgroup_fd = cgroup_fd;
        spec.cgroup_procs_fd = cgroup_procs_fd;
        spawn_spec(py, &spec, cgroup_dir, cgroup_dir_procs, only_if_empty)
    }
}

/// (token, old pid, old pidfd, exit or None when lost, ended, new pid or 0, new pidfd or -1,
/// new copy's start, new copy still armed).
type RespawnEvent = (u64, i32, i32, Option<ExitTuple>, f64, i32, i32, f64, bool);

#[pyclass(name = "Respawner", module = "pmon3._native", frozen)]
struct PyRespawner {
    inner: respawn::Respawner,
}

#[pymethods]
impl PyRespawner {
    #[new]
    fn new(burst_gap: f64, trace_fd: i32) -> PyResult<Self> {
        Ok(PyRespawner {
            inner: respawn::Respawner::start(burst_gap, trace_fd)?,
        })
    }

    fn fileno(&self) -> i32 {
        self.inner.notify_fd()
    }

    fn running(&self) -> bool {
        self.inner.running()
    }

    #[allow(clippy::too_many_arguments)]
    fn arm(
        &self,
        pid: i32,
        pidfd: i32,
        started: f64,
        launch: &PyLaunch,
        cgroup_dir: PathBuf,
        cgroup_procs: bool,
        on_failure: bool,
        min_uptime: f64,
        success_codes: Vec<i32>,
    ) -> PyResult<u64> {
        Ok(self.inner.arm(respawn::Armed {
            pid,
            pidfd,
            started,
            recipe: Arc::clone(&launch.recipe),
            cgroup_dir: cgroup_dir.into_os_string().into_boxed_os_str(),
            cgroup_procs,
            rule: Arc::new(respawn::Rule {
                on_failure,
                min_uptime,
                success_codes: success_codes.into_boxed_slice(),
            }),
        })?)
    }

    fn disarm(&self, py: Python<'_>, token: u64) -> bool {
        py.detach(|| self.inner.disarm(token))
    }

    fn disarm_all(&self, py: Python<'_>) {
        py.detach(|| self.inner.disarm_all())
    }

    fn take(&self, py: Python<'_>) -> Vec<RespawnEvent> {
        py.detach(|| self.inner.take())
            .into_iter()
            .map(|e| {
                let (new_pid, new_fd, spawned) = e.new.unwrap_or((0, -1, 0.0));
                (
                    e.token,
                    e.old_pid,
                    e.old_pidfd,
                    e.exit.map(exit_tuple),
                    e.ended,
                    new_pid,
                    new_fd,
                    spawned,
                    e.armed,
                )
            })
            .collect()
    }

    fn close(&self, py: Python<'_>) {
        py.detach(|| self.inner.close())
    }
}

#[pyfunction]
fn pidfd_open(pid: i32) -> PyResult<i32> {
    Ok(reaper::pidfd_open(pid)?.into_raw_fd())
}

#[pyfunction]
fn pidfd_send_signal(pidfd: i32, sig: i32) -> PyResult<()> {
    Ok(reaper::pidfd_send_signal(pidfd, sig)?)
}

#[pyfunction]
fn killpg(pgid: i32, sig: i32) -> PyResult<()> {
    Ok(reaper::killpg(pgid, sig)?)
}

#[pyfunction]
fn reap() -> PyResult<Vec<ExitTuple>> {
    Ok(reaper::reap()?.into_iter().map(exit_tuple).collect())
}

#[pyfunction]
fn reap_pidfd(pidfd: i32, pid: i32) -> PyResult<Option<ExitTuple>> {
    Ok(reaper::reap_pidfd(pidfd, pid)?.map(exit_tuple))
}

/// Give the C heap's free memory back to the kernel (glibc's malloc_trim); false where there is no such
/// call (other C libraries) or nothing was returned.
#[pyfunction]
fn malloc_trim(py: Python<'_>) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a size and touches only the allocator's own state.
        py.detach(|| unsafe { libc::malloc_trim(0) } == 1)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = py;
        false
    }
}

/// (start ticks, cpu ticks, resident pages) per pid, None for one that is gone or a zombie: `ls` of
/// 10,000 processes reads as many /proc files, without the GIL.
#[pyfunction]
fn proc_usage(py: Python<'_>, pids: Vec<i32>) -> Vec<Option<(u64, u64, u64)>> {
    py.detach(|| pids.into_iter().map(reaper::proc_usage).collect())
}

/// JSON text re-indented as Python's json.dumps(value, indent=width) writes it (see jsonfmt.rs).
#[pyfunction]
#[pyo3(signature = (text, width=2))]
fn json_indent(py: Python<'_>, text: &str, width: usize) -> String {
    py.detach(|| jsonfmt::indent(text, width))
}

/// (the object's text without member `key`, that member's value as written), or None (see jsonfmt.rs).
#[pyfunction]
fn json_take(py: Python<'_>, text: &str, key: &str) -> Option<(String, String)> {
    py.detach(|| jsonfmt::take_member(text, key))
}

#[pyfunction]
fn set_child_subreaper() -> PyResult<()> {
    Ok(reaper::set_child_subreaper()?)
}

#[pyfunction]
fn proc_start_time(pid: i32) -> PyResult<u64> {
    Ok(reaper::proc_start_time(pid)?)
}

/// An os.stat_result with the fields os.stat fills on Linux; the named extras go by name, so
/// their position in the struct sequence does not matter.
fn stat_result<'py>(py: Python<'py>, st: &libc::stat) -> PyResult<Bound<'py, PyAny>> {
    let seq = (
        st.st_mode,
        st.st_ino,
        st.st_dev,
        st.st_nlink,
        st.st_uid,
        st.st_gid,
        st.st_size,
        st.st_atime,
        st.st_mtime,
        st.st_ctime,
    );
    let extra = PyDict::new(py);
    for (name, sec, nsec) in [
        ("atime", st.st_atime, st.st_atime_nsec),
        ("mtime", st.st_mtime, st.st_mtime_nsec),
        ("ctime", st.st_ctime, st.st_ctime_nsec),
    ] {
        // As os.stat: float seconds as sec + nsec * 1e-9, and exact nanoseconds.
        extra.set_item(format!("st_{name}"), sec as f64 + nsec as f64 * 1e-9)?;
        extra.set_item(
            format!("st_{name}_ns"),
            i128::from(sec) * 1_000_000_000 + i128::from(nsec),
        )?;
    }
    extra.set_item("st_blksize", st.st_blksize)?;
    extra.set_item("st_blocks", st.st_blocks)?;
    extra.set_item("st_rdev", st.st_rdev)?;
    py.import("os")?.getattr("stat_result")?.call1((seq, extra))
}

#[pyfunction]
#[pyo3(signature = (path, uid, gid, groups, follow=true))]
fn stat_as<'py>(
    py: Python<'py>,
    path: PathBuf,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    follow: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let creds = Creds { uid, gid, groups };
    let st = py.detach(|| fsas::stat_as(path.as_os_str(), &creds, follow))?;
    stat_result(py, &st)
}

#[pyfunction]
#[pyo3(signature = (fd, path, mode=None, uid=None, gid=None, groups=None))]
fn bind_unix(
    py: Python<'_>,
    fd: i32,
    path: PathBuf,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<Vec<u32>>,
) -> PyResult<()> {
    let creds = uid.map(|uid| Creds {
        uid,
        gid: gid.unwrap_or(uid),
        groups: groups.unwrap_or_default(),
    });
    Ok(py.detach(|| sockets::bind_unix(fd, path.as_os_str(), mode, creds.as_ref()))?)
}

#[pyfunction]
fn pidfd_getfd(pidfd: i32, target: i32) -> PyResult<i32> {
    Ok(sockets::pidfd_getfd(pidfd, target)?.into_raw_fd())
}

#[pyfunction]
fn access_as(
    py: Python<'_>,
    path: PathBuf,
    mode: i32,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
) -> PyResult<()> {
    let creds = Creds { uid, gid, groups };
    Ok(py.detach(|| fsas::access_as(path.as_os_str(), mode, &creds))?)
}

#[pyfunction]
fn open_as(
    py: Python<'_>,
    path: PathBuf,
    flags: i32,
    mode: u32,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
) -> PyResult<i32> {
    let creds = Creds { uid, gid, groups };
    let fd = py.detach(|| fsas::open_as(path.as_os_str(), flags, mode, &creds))?;
    Ok(fd.into_raw_fd())
}

/// Seconds -> deadline; negative or NaN means "now", too large means "never".
fn deadline(timeout: f64) -> Option<Instant> {
    let t = if timeout.is_nan() {
        0.0
    } else {
        timeout.max(0.0)
    };
    Duration::try_from_secs_f64(t)
        .ok()
        .and_then(|d| Instant::now().checked_add(d))
}

/// Retry `op` after EINTR once Python's signal handlers have run (so Ctrl-C interrupts a wait).
fn interruptible<T>(py: Python<'_>, op: impl Fn() -> crate::error::Result<T> + Sync) -> PyResult<T>
where
    T: Send,
{
    loop {
        match py.detach(&op) {
            Err(e) if e.errno == libc::EINTR => py.check_signals()?,
            r => return Ok(r?),
        }
    }
}

/// A regular expression matched in time linear in the input (the `regex` crate: no backtracking, so no
/// pattern a user gives pmond can make a match take minutes), with bounded compiled size.
#[pyclass(name = "Regex", module = "pmon3._native", frozen)]
struct PyRegex {
    inner: regex::bytes::Regex,
}

/// Compiled program and lazy DFA cache limits of a pattern: generous for a readiness pattern, small enough
/// that `a{1000}{1000}` is refused instead of taking memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[pymethods]
impl PyRegex {
    #[new]
    fn new(pattern: &str) -> PyResult<Self> {
        regex::bytes::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(|inner| PyRegex { inner })
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
    }

    fn search(&self, py: Python<'_>, data: &[u8]) -> bool {
        py.detach(|| self.inner.is_match(data))
    }
}

#[pyclass(name = "MessageQueue", module = "pmon3._native", frozen)]
struct PyMessageQueue {
    inner: MessageQueue,
}

#[pymethods]
impl PyMessageQueue {
    #[new]
    #[pyo3(signature = (name, create=false, exclusive=false, mode=0o600, maxmsg=0, msgsize=0, read=true, write=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &str,
        create: bool,
        exclusive: bool,
        mode: u32,
        maxmsg: i64,
        msgsize: i64,
        read: bool,
        write: bool,
    ) -> PyResult<Self> {
        let opts = OpenOptions {
            create,
            exclusive,
            mode,
            maxmsg,
            msgsize,
            read,
            write,
        };
        Ok(PyMessageQueue {
            inner: MessageQueue::open(name, &opts)?,
        })
    }

    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    #[getter]
    fn maxmsg(&self) -> i64 {
        self.inner.maxmsg()
    }

    #[getter]
    fn msgsize(&self) -> i64 {
        self.inner.msgsize()
    }

    fn fileno(&self) -> PyResult<i32> {
        Ok(self.inner.fileno()?)
    }

    fn owner(&self) -> PyResult<(u32, u32, u32)> {
        Ok(self.inner.owner()?)
    }

    fn fchown(&self, uid: u32, gid: u32) -> PyResult<()> {
        Ok(self.inner.fchown(uid, gid)?)
    }

    fn fchmod(&self, mode: u32) -> PyResult<()> {
        Ok(self.inner.fchmod(mode)?)
    }

    #[pyo3(signature = (data, priority=0))]
    fn send(&self, data: &[u8], priority: u32) -> PyResult<bool> {
        Ok(self.inner.send(data, priority)?)
    }

    fn send_timeout(&self, py: Python<'_>, data: &[u8], timeout: f64) -> PyResult<bool> {
        let until = deadline(timeout);
        interruptible(py, || self.inner.send_until(data, until, false))
    }

    fn receive<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        Ok(self.inner.receive()?.map(|m| PyBytes::new(py, &m)))
    }

    fn receive_timeout<'py>(
        &self,
        py: Python<'py>,
        timeout: f64,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let until = deadline(timeout);
        let msg = interruptible(py, || self.inner.receive_until(until, false))?;
        Ok(msg.map(|m| PyBytes::new(py, &m)))
    }

    fn close(&self) -> PyResult<()> {
        Ok(self.inner.close()?)
    }

    #[staticmethod]
    fn unlink(name: &str) -> PyResult<()> {
        Ok(MessageQueue::unlink(name)?)
    }

    fn __repr__(&self) -> String {
        format!(
            "<MessageQueue {:?} fd={}>",
            self.inner.name(),
            self.inner.fileno().unwrap_or(-1)
        )
    }
}

#[pyfunction]
fn mq_list(py: Python<'_>) -> PyResult<Vec<OsString>> {
    // Forks a helper and reads its pipe: let other threads run meanwhile.
    Ok(py.detach(mqlist::list)?)
}

#[pyfunction]
fn fallocate(py: Python<'_>, fd: i32, mode: i32, offset: i64, length: i64) -> PyResult<()> {
    // Collapsing a range of a large file takes a while: let other threads run.
    Ok(py.detach(|| files::fallocate(fd, mode, offset, length))?)
}

type InotifyEvent = (i32, u32, u32, Option<OsString>);

#[pyclass(name = "Inotify", module = "pmon3._native", frozen)]
struct PyInotify {
    inner: Inotify,
}

#[pymethods]
impl PyInotify {
    #[new]
    fn new() -> PyResult<Self> {
        Ok(PyInotify {
            inner: Inotify::new()?,
        })
    }

    fn add_watch(&self, path: PathBuf, mask: u32) -> PyResult<i32> {
        Ok(self.inner.add_watch(path.as_os_str(), mask)?)
    }

    fn rm_watch(&self, wd: i32) -> PyResult<()> {
        Ok(self.inner.rm_watch(wd)?)
    }

    fn fileno(&self) -> PyResult<i32> {
        Ok(self.inner.fileno()?)
    }

    fn read(&self) -> PyResult<Vec<InotifyEvent>> {
        Ok(self
            .inner
            .read()?
            .into_iter()
            .map(|e| (e.wd, e.mask, e.cookie, e.name))
            .collect())
    }

    fn close(&self) -> PyResult<()> {
        Ok(self.inner.close()?)
    }

    fn __repr__(&self) -> String {
        format!("<Inotify fd={}>", self.inner.fileno().unwrap_or(-1))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", crate::VERSION)?;
    m.add_function(wrap_pyfunction!(spawn, m)?)?;
    m.add_function(wrap_pyfunction!(pidfd_open, m)?)?;
    m.add_function(wrap_pyfunction!(pidfd_send_signal, m)?)?;
    m.add_function(wrap_pyfunction!(killpg, m)?)?;
    m.add_function(wrap_pyfunction!(reap, m)?)?;
    m.add_function(wrap_pyfunction!(reap_pidfd, m)?)?;
    m.add_function(wrap_pyfunction!(malloc_trim, m)?)?;
    m.add_function(wrap_pyfunction!(json_indent, m)?)?;
    m.add_function(wrap_pyfunction!(json_take, m)?)?;
    m.add_function(wrap_pyfunction!(proc_usage, m)?)?;
    m.add_function(wrap_pyfunction!(set_child_subreaper, m)?)?;
    m.add_function(wrap_pyfunction!(proc_start_time, m)?)?;
    m.add_function(wrap_pyfunction!(stat_as, m)?)?;
    m.add_function(wrap_pyfunction!(access_as, m)?)?;
    m.add_function(wrap_pyfunction!(open_as, m)?)?;
    m.add_function(wrap_pyfunction!(bind_unix, m)?)?;
    m.add_function(wrap_pyfunction!(pidfd_getfd, m)?)?;
    m.add_class::<PyMessageQueue>()?;
    m.add_class::<PyRegex>()?;
    m.add_function(wrap_pyfunction!(mq_list, m)?)?;
    m.add_function(wrap_pyfunction!(fallocate, m)?)?;
    for (name, value) in [
        ("FALLOC_FL_KEEP_SIZE", files::FALLOC_FL_KEEP_SIZE),
        ("FALLOC_FL_PUNCH_HOLE", files::FALLOC_FL_PUNCH_HOLE),
        ("FALLOC_FL_COLLAPSE_RANGE", files::FALLOC_FL_COLLAPSE_RANGE),
    ] {
        m.add(name, value)?;
    }
    m.add_class::<PyInotify>()?;
    m.add_class::<PyLaunch>()?;
    m.add_class::<PyRespawner>()?;
    for (name, value) in [
        ("IN_ACCESS", inotify::IN_ACCESS),
        ("IN_MODIFY", inotify::IN_MODIFY),
        ("IN_ATTRIB", inotify::IN_ATTRIB),
        ("IN_CLOSE_WRITE", inotify::IN_CLOSE_WRITE),
        ("IN_CLOSE_NOWRITE", inotify::IN_CLOSE_NOWRITE),
        ("IN_OPEN", inotify::IN_OPEN),
        ("IN_MOVED_FROM", inotify::IN_MOVED_FROM),
        ("IN_MOVED_TO", inotify::IN_MOVED_TO),
        ("IN_CREATE", inotify::IN_CREATE),
        ("IN_DELETE", inotify::IN_DELETE),
        ("IN_DELETE_SELF", inotify::IN_DELETE_SELF),
        ("IN_MOVE_SELF", inotify::IN_MOVE_SELF),
        ("IN_UNMOUNT", inotify::IN_UNMOUNT),
        ("IN_Q_OVERFLOW", inotify::IN_Q_OVERFLOW),
        ("IN_IGNORED", inotify::IN_IGNORED),
        ("IN_ISDIR", inotify::IN_ISDIR),
        ("IN_ONLYDIR", inotify::IN_ONLYDIR),
        ("IN_DONT_FOLLOW", inotify::IN_DONT_FOLLOW),
        ("IN_EXCL_UNLINK", inotify::IN_EXCL_UNLINK),
        ("IN_MASK_ADD", inotify::IN_MASK_ADD),
        ("IN_ONESHOT", inotify::IN_ONESHOT),
    ] {
        m.add(name, value)?;
    }
    Ok(())
}
