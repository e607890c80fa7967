//! The daemon's life: logging, the pidfile lock, mounting, waiting for SIGTERM/SIGINT, and a
//! clean unmount on the way out.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};

use crate::cli::Cli;
use crate::fs::Lxcfs;
use crate::fuse_adapter::Mounted;

/// A failure to start, with the message for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(String);

/// Log to stderr at info, or debug with `-d`; `RUST_LOG=<level>` overrides. A plain level
/// rather than an `EnvFilter`: its regex engine would double the daemon's resident code.
fn init_logging(debug: bool) {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(if debug {
            tracing_subscriber::filter::LevelFilter::DEBUG
        } else {
            tracing_subscriber::filter::LevelFilter::INFO
        });
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// The pidfile, locked for the daemon's lifetime and removed when dropped.
struct PidFile {
    path: std::path::PathBuf,
    _file: File,
}

impl PidFile {
    fn lock(path: &std::path::Path) -> Result<PidFile, StartError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StartError(format!("cannot open pidfile {}: {e}", path.display())))?;
        // SAFETY: flock on an fd we own; no pointers involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let held = std::fs::read_to_string(path).unwrap_or_default();
            return Err(StartError(format!(
                "pidfile {} is locked: another lxcfs (pid {}) is running",
                path.display(),
                held.trim()
            )));
        }
        file.set_len(0)
            .map_err(|e| StartError(format!("pidfile {}: {e}", path.display())))?;
        writeln!(file, "{}", std::process::id())
            .map_err(|e| StartError(format!("pidfile {}: {e}", path.display())))?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _file: file,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Run the daemon until SIGTERM or SIGINT. Returns after unmounting.
pub fn run(cli: &Cli) -> Result<(), StartError> {
    init_logging(cli.debug);
    let extra = cli.extra_mount_opts();
    if !extra.is_empty() {
        tracing::warn!("ignoring unsupported mount options: {}", extra.join(","));
    }
    let mp = &cli.mountpoint;
    match std::fs::metadata(mp) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(StartError(format!("{} is not a directory", mp.display()))),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(StartError(format!(
                "{} is a dead FUSE mount (transport endpoint is not connected): run `umount -l {}` first",
                mp.display(),
                mp.display()
            )))
        }
        Err(e) => return Err(StartError(format!("mountpoint {}: {e}", mp.display()))),
    }
    let _pid = PidFile::lock(&cli.pidfile)?;

    // Block the signals before any thread starts so every thread inherits the mask and only
    // the sigwait below sees them.
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| StartError(format!("block signals: {e}")))?;

    let fs =
        Arc::new(Lxcfs::new(cli.options()).map_err(|e| StartError(format!("cannot start: {e}")))?);
    let threads = cli.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2)
    });
    let mounted = Mounted::mount(fs.clone(), mp, threads)
        .map_err(|e| StartError(format!("cannot mount {}: {e}", mp.display())))?;
    tracing::info!(
        "serving {} with {threads} threads (pid {})",
        mp.display(),
        std::process::id()
    );

    let sig = set.wait();
    match sig {
        Ok(s) => tracing::info!("{s}: unmounting {}", mp.display()),
        Err(e) => tracing::warn!(
            "waiting for signals failed ({e}); unmounting {}",
            mp.display()
        ),
    }
    let r = mounted.unmount();
    fs.shutdown();
    r.map_err(|e| StartError(format!("unmount {}: {e}", mp.display())))
}
