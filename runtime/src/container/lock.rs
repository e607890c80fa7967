//! A per-container lock, `<run>/<name>.lock` (flock), held while a container is being created,
//! started or deleted. `lxr launch` killed halfway leaves its monitor finishing the start; a
//! `lxr delete` meanwhile would remove the rootfs under the init that is setting it up. The
//! monitor inherits the lock and lets go once the start is done (or failed), so a delete
//! waits for that instead of racing it.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};
use crate::paths::Paths;

/// A held container lock (released when dropped, and by every process holding a copy).
#[derive(Debug)]
pub struct Lock(File);

impl Lock {
    /// Take the lock of container `name`, waiting up to `wait` for another lxr to finish.
    pub fn take(paths: &Paths, name: &str, wait: Duration) -> Result<Lock> {
        paths.ensure()?;
        let path = Lock::path(paths, name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))?;
        let t = Instant::now();
        loop {
            // SAFETY: flock on an fd we own; no pointers.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Lock(f));
            }
            if t.elapsed() >= wait {
                return Err(Error::Usage(format!(
                    "{name} is busy: another lxr is creating, starting or deleting it (try again)"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where the lock of `name` lives (removed with the container).
    pub fn path(paths: &Paths, name: &str) -> std::path::PathBuf {
        paths.run.join(format!("{name}.lock"))
    }

    /// The fd, for a forked monitor that must close its copy once the start is done.
    pub fn raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
