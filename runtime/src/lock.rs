//! Advisory file locks (flock). A container's lock, `<run>/<name>.lock`, is held while the
//! container is created, started or deleted: `lxr launch` killed halfway leaves its monitor
//! finishing the start, and a `lxr delete` meanwhile would remove the rootfs under the init
//! that is setting it up. The monitor inherits the lock and lets go once the start is done
//! (or failed), so a delete waits for that instead of racing it. The image store has one
//! too (`<data>/images/.lock`): one import or delete at a time.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};
use crate::paths::Paths;

/// How long a command waits for another lxr holding the same lock.
pub const WAIT: Duration = Duration::from_secs(30);

/// A held lock (released when dropped, and by every process holding a copy of the fd).
#[derive(Debug)]
pub struct Lock {
    file: File,
    /// A container's lock: (the lock file, the container's directory). The lock file is
    /// removed when the lock is dropped and there is no such container (a launch that failed
    /// before anything was made, a `stop` or `delete` of a name that does not exist), so a
    /// command about a container that never was leaves nothing behind (found in the v2 guest,
    /// issue 18: `<run>/<name>.lock` outlived a failed `launch`).
    orphan: Option<(PathBuf, PathBuf)>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Still held here (the file is closed after this): no other lxr is between the check
        // and the removal.
        if let Some((lock, dir)) = &self.orphan {
            if !dir.exists() {
                let _ = std::fs::remove_file(lock);
            }
        }
    }
}

impl Lock {
    /// Lock `path` (created if missing), waiting up to `wait`; `busy` says who holds it.
    pub fn take(path: &Path, wait: Duration, busy: impl FnOnce() -> String) -> Result<Lock> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ctx(|| format!("open {}", path.display()))?;
        let t = Instant::now();
        loop {
            // flock(LOCK_EX | LOCK_NB); nothing unlocks it on drop but the last close, so
            // the monitor's inherited copy keeps holding it (unlike nix's `Flock`, whose drop
            // would unlock every copy).
            if f.try_lock().is_ok() {
                return Ok(Lock {
                    file: f,
                    orphan: None,
                });
            }
            if t.elapsed() >= wait {
                return Err(Error::Usage(busy()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The lock of container `name`.
    pub fn container(paths: &Paths, name: &str) -> Result<Lock> {
        Lock::container_wait(paths, name, WAIT)
    }

    /// The lock of container `name`, waiting at most `wait` for it.
    pub fn container_wait(paths: &Paths, name: &str, wait: Duration) -> Result<Lock> {
        paths.ensure()?;
        let path = Lock::container_path(paths, name);
        let mut lock = Lock::take(&path, wait, || {
            format!("{name} is busy: another lxr is creating, starting or deleting it (try again)")
        })?;
        lock.orphan = Some((path, paths.container(name)));
        Ok(lock)
    }

    /// Where the lock of container `name` lives (removed with the container).
    pub fn container_path(paths: &Paths, name: &str) -> PathBuf {
        paths.run.join(format!("{name}.lock"))
    }

    /// The fd, for a forked monitor that must close its copy once the start is done.
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_of_no_container_leaves_no_file() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::under(root.path());
        let file = Lock::container_path(&paths, "c1");
        drop(Lock::container(&paths, "c1").unwrap());
        assert!(!file.exists(), "the lock of a container that is not there");
        std::fs::create_dir_all(paths.container("c1")).unwrap();
        drop(Lock::container(&paths, "c1").unwrap());
        assert!(file.exists(), "an existing container keeps its lock file");
    }
}
