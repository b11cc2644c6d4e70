//! pmon3._native: a typed Linux syscall layer (spawn, reap, signal, POSIX message queues,
//! inotify, fallocate, file access with another user's rights).
//! Policy lives in Python; only `py_api` knows PyO3, so `cargo test --no-default-features`
//! exercises everything else without Python.

pub mod clone3;
pub mod error;
pub mod files;
pub mod fsas;
pub mod inotify;
pub mod jsonfmt;
pub mod mq;
pub mod mqlist;
pub mod preexec;
pub mod reaper;
pub mod respawn;
pub mod sockets;
pub mod spawn;

#[cfg(feature = "python")]
mod py_api;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(feature = "python")]
#[pyo3::pymodule]
fn _native(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    py_api::register(m)
}
