//! Knowing whether a start worked. An init that dies while it boots (a broken image, a systemd
//! that cannot set itself up) must fail `launch`/`start` with its exit status and what it last
//! printed, not leave a container that silently is not there. Two ways to know:
//!
//! * an init that speaks systemd's readiness protocol (systemd: `/sbin/init` resolves to it)
//!   gets `NOTIFY_SOCKET` (a datagram socket of the monitor's, bound at `/run/host/notify` in
//!   the container, as systemd-nspawn does), and the start waits until it says `READY=1` —
//!   the system is up — or dies, or [`READY_TIMEOUT`] passes (the start then succeeds with a
//!   warning);
//! * any other init is watched for [`WINDOW`] after it starts: one that dies that soon fails
//!   the start.

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::beneath::Dir;
use crate::error::{Context, Result};

/// How long an init without readiness notification is watched after it starts.
pub const WINDOW: Duration = Duration::from_millis(50);

/// How long a start waits for `READY=1`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the notify socket appears in the container.
pub const NOTIFY_PATH: &str = "/run/host/notify";

/// What kind of init a rootfs has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitKind {
    /// systemd: halts on SIGRTMIN+3, reports readiness.
    Systemd,
    /// Anything else (busybox init halts on SIGUSR1).
    Other,
}

/// The init of a rootfs, from where `/sbin/init` points (never following a link out of the
/// rootfs: only the link's own text is read).
pub fn init_kind(rootfs: &Path) -> InitKind {
    let target = Dir::open(rootfs)
        .and_then(|d| d.open_dir_in_root("sbin"))
        .and_then(|d| d.read_link("init"))
        .unwrap_or_default();
    kind_of_link(&target)
}

/// The init a `/sbin/init` link to `target` names.
pub fn kind_of_link(target: &Path) -> InitKind {
    if target.to_string_lossy().contains("systemd") {
        InitKind::Systemd
    } else {
        InitKind::Other
    }
}

/// The init of a container's rootfs: a directory, or the overlay of `overlay`'s layers
/// mounted there (read through its layers, [`crate::storage::overlay::sbin_init_link`]).
pub fn init_kind_of(rootfs: &Path, overlay: Option<&crate::storage::overlay::Layers>) -> InitKind {
    match overlay {
        Some(l) => kind_of_link(&crate::storage::overlay::sbin_init_link(l).unwrap_or_default()),
        None => init_kind(rootfs),
    }
}

/// The monitor's end of the readiness protocol.
pub struct Notify {
    sock: UnixDatagram,
    /// The socket's path (in the container's private state directory).
    pub path: PathBuf,
}

impl Notify {
    /// A socket at `<state_dir>/notify`. Its own mode lets the container's root send (the state
    /// directory keeps everyone else out).
    pub fn create(state_dir: &Path) -> Result<Notify> {
        use std::os::unix::fs::PermissionsExt;
        let path = state_dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).ctx(|| format!("bind {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            .ctx(|| format!("chmod {}", path.display()))?;
        sock.set_nonblocking(true).ctx(|| "notify socket".into())?;
        Ok(Notify { sock, path })
    }

    /// Whether a `READY=1` arrived (reads what is there).
    fn ready(&self) -> bool {
        let mut buf = [0u8; 4096];
        let mut ready = false;
        while let Ok(n) = self.sock.recv(&mut buf) {
            ready |= String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1");
        }
        ready
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How the wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booted {
    /// It said it is ready (or lived through the window).
    Ready,
    /// It is still booting after [`READY_TIMEOUT`].
    NotYet,
    /// It exited.
    Died,
}

/// Wait for the init (`init`, a pidfd) to be ready, as the module says.
pub fn wait(init: &impl AsFd, notify: Option<&Notify>) -> Booted {
    let start = Instant::now();
    let limit = if notify.is_some() {
        READY_TIMEOUT
    } else {
        WINDOW
    };
    loop {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return if notify.is_some() {
                Booted::NotYet
            } else {
                Booted::Ready
            };
        }
        let mut fds = vec![PollFd::new(init.as_fd(), PollFlags::POLLIN)];
        if let Some(n) = notify {
            fds.push(PollFd::new(n.sock.as_fd(), PollFlags::POLLIN));
        }
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        if nix::poll::poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        )
        .is_err()
        {
            continue;
        }
        let ready: Vec<bool> = fds.iter().map(crate::fds::ready).collect();
        if ready[0] {
            return Booted::Died;
        }
        if notify.is_some_and(|n| ready[1] && n.ready()) {
            return Booted::Ready;
        }
    }
}

/// The last `n` lines the container printed on its console (from `console.log` and the file
/// before it).
pub fn console_tail(console_log: &Path, n: usize) -> String {
    let mut old = console_log.as_os_str().to_owned();
    old.push(".1");
    let text = [PathBuf::from(old), console_log.to_path_buf()]
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .collect::<String>();
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect();
    crate::text::clean(&lines[lines.len().saturating_sub(n)..].join("\n"), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_is_known_by_its_link() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sbin")).unwrap();
        std::os::unix::fs::symlink("/lib/systemd/systemd", d.path().join("sbin/init")).unwrap();
        assert_eq!(init_kind(d.path()), InitKind::Systemd);
        std::fs::remove_file(d.path().join("sbin/init")).unwrap();
        std::fs::write(d.path().join("sbin/init"), "busybox").unwrap();
        assert_eq!(init_kind(d.path()), InitKind::Other);
    }

    /// Debian 12 is merged-/usr: `/sbin` is a link to `usr/sbin`, whose `init` names systemd.
    /// Misread as "other", its stop sent SIGUSR1 and it got no NOTIFY_SOCKET.
    #[test]
    fn a_merged_usr_images_init_is_found_through_its_sbin_link() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("usr/sbin")).unwrap();
        std::os::unix::fs::symlink("usr/sbin", d.path().join("sbin")).unwrap();
        std::os::unix::fs::symlink("../lib/systemd/systemd", d.path().join("usr/sbin/init"))
            .unwrap();
        assert_eq!(init_kind(d.path()), InitKind::Systemd);
        // An absolute link resolves inside the rootfs too, never on the host.
        std::fs::remove_file(d.path().join("sbin")).unwrap();
        std::os::unix::fs::symlink("/usr/sbin", d.path().join("sbin")).unwrap();
        assert_eq!(init_kind(d.path()), InitKind::Systemd);
        std::fs::remove_file(d.path().join("sbin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/../../../../sbin", d.path().join("sbin")).unwrap();
        assert_eq!(init_kind(d.path()), InitKind::Other);
    }

    #[test]
    fn the_console_tail_is_the_last_lines_cleaned() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("console.log");
        std::fs::write(d.path().join("console.log.1"), "one\r\ntwo\r\n").unwrap();
        std::fs::write(&log, "three\r\n\x1b[31mfour\x1b[0m\r\n\r\n").unwrap();
        assert_eq!(console_tail(&log, 3), "two\nthree\n?[31mfour?[0m");
    }
}
