//! Errors of the runtime: each says what failed and, where there is one, what to do.

/// A failure of an lxr operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The user asked for something that cannot be done as asked.
    #[error("{0}")]
    Usage(String),
    /// The host is not set up for unprivileged containers.
    #[error("{0}")]
    Host(String),
    /// A container or image does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Something inside the new container failed before its init ran.
    #[error("{SETUP_PREFIX}{0}")]
    Setup(String),
}

const SETUP_PREFIX: &str = "container setup failed: ";

/// Result alias of the runtime.
pub type Result<T> = std::result::Result<T, Error>;

/// Attach a description to an I/O error.
pub trait Context<T> {
    /// `Err(e)` → `Error::Os { what, e }`.
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Os {
            what: what(),
            source,
        })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Os {
            what: what(),
            source: std::io::Error::from(e),
        })
    }
}

impl Error {
    /// A setup failure reported as text by a child process (which printed its own
    /// `Error`): said once, not once per process it crossed.
    pub fn from_child(msg: &str) -> Error {
        let mut m = msg.trim();
        while let Some(rest) = m.strip_prefix(SETUP_PREFIX) {
            m = rest;
        }
        Error::Setup(m.to_string())
    }

    /// From a nix error with a description.
    pub fn from_nix(what: &str, e: nix::Error) -> Error {
        Error::Os {
            what: what.into(),
            source: std::io::Error::from(e),
        }
    }
}
