//! One error type for the whole syscall layer: an errno plus what we were doing.

use std::fmt;

/// A failed system call: `errno` and a context such as `"exec /bin/nope"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub errno: i32,
    pub context: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(errno: i32, context: impl Into<String>) -> Self {
        Error {
            errno,
            context: context.into(),
        }
    }

    /// The calling thread's current errno, with context.
    pub fn last(context: impl Into<String>) -> Self {
        Error::new(errno(), context)
    }

    /// An argument that cannot be passed to the kernel.
    pub fn invalid(context: impl Into<String>) -> Self {
        Error::new(libc::EINVAL, context)
    }

    /// `"<context>: <strerror>"`, the text Python shows after `[Errno N]`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.context, strerror(self.errno))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(e.raw_os_error().unwrap_or(libc::EIO), e.kind().to_string())
    }
}

/// The calling thread's errno.
pub fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// strerror without the " (os error N)" suffix std adds.
pub fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_has_context_and_strerror() {
        let e = Error::new(libc::ENOENT, "exec /bin/nope");
        assert_eq!(e.message(), "exec /bin/nope: No such file or directory");
    }
}
