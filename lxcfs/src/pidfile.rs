//! The pidfile (`-p`, default `/run/lxcfs.pid`): holds the daemon's pid and an exclusive
//! `flock` for the daemon's lifetime, so a second daemon on the same pidfile is refused. The
//! lock lives on the open file, so it survives a live upgrade's exec (the fd is handed over,
//! `crate::handover`); with `--supervise` the supervisor holds it.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use crate::error::StartError;

/// The pidfile, locked for the daemon's lifetime and removed when dropped.
pub struct PidFile {
    path: PathBuf,
    file: File,
}

impl PidFile {
    /// The pidfile a predecessor locked and handed over (same pid: an exec keeps it).
    pub fn adopt(path: &Path, file: File) -> PidFile {
        PidFile {
            path: path.to_path_buf(),
            file,
        }
    }

    /// Lock `path` (failing if another daemon holds it) and write our pid.
    pub fn lock(path: &Path) -> Result<PidFile, StartError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StartError::new(format!("cannot open pidfile {}: {e}", path.display())))?;
        // flock(LOCK_EX | LOCK_NB) on Linux; the lock stays on the open file description (no
        // unlock on drop), so an exec'd successor that inherits the fd keeps it.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let held = std::fs::read_to_string(path).unwrap_or_default();
                return Err(StartError::new(format!(
                    "pidfile {} is locked: another lxcfs (pid {}) is running",
                    path.display(),
                    held.trim()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StartError::new(format!(
                    "cannot lock pidfile {}: {e}",
                    path.display()
                )));
            }
        }
        let failed =
            |e: std::io::Error| StartError::new(format!("pidfile {}: {e}", path.display()));
        file.set_len(0).map_err(failed)?;
        writeln!(file, "{}", std::process::id()).map_err(failed)?;
        Ok(PidFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The locked file's fd, to hand over to a successor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
