//! The two halves of systemd's service protocol lxr's daemons speak, without libsystemd:
//! `sd_notify` (a datagram to `$NOTIFY_SOCKET`, with file descriptors for the fd store) and
//! `sd_listen_fds_with_names` (`$LISTEN_PID`, `$LISTEN_FDS`, `$LISTEN_FDNAMES`, fds from 3).
//! cgmanager reports readiness with it; lxcfs also parks its FUSE connection in the fd store
//! (`FDSTORE=1`), so a crashed lxcfs is restarted with the live connection instead of a dead
//! mount.

use std::io::IoSlice;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::sys::socket::{
    sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// Send `state` (newline-separated `KEY=VALUE`s) to systemd with `fds` attached. Returns
/// `Ok(false)` when there is no `$NOTIFY_SOCKET` (not run by systemd, or not `Type=notify`).
pub fn notify(state: &str, fds: &[RawFd]) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
        return Ok(false);
    };
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(abs) => UnixAddr::new_abstract(abs),
        None => UnixAddr::new(bytes),
    }
    .map_err(std::io::Error::from)?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)?;
    let iov = [IoSlice::new(state.as_bytes())];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    sendmsg(
        std::os::fd::AsRawFd::as_raw_fd(&sock),
        &iov,
        cmsgs,
        MsgFlags::empty(),
        Some(&addr),
    )
    .map_err(std::io::Error::from)?;
    Ok(true)
}

/// The fds systemd passed to this process, with their names (`LISTEN_FDNAMES`, `unknown`
/// when unnamed). Consumes the variables, so children do not see them.
pub fn listen_fds() -> Vec<(String, OwnedFd)> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let n = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // Called while the daemon is still single-threaded.
        std::env::remove_var(v);
    }
    if !pid_ok || n <= 0 {
        return Vec::new();
    }
    let mut names = names.split(':');
    (0..n)
        .filter_map(|i| {
            let fd = LISTEN_FDS_START.checked_add(i)?;
            let name = names.next().filter(|s| !s.is_empty()).unwrap_or("unknown");
            // SAFETY: systemd hands these fds to this process (LISTEN_PID is ours); nothing
            // else in the process owns them.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let _ = nix::fcntl::fcntl(
                &owned,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            Some((name.to_string(), owned))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn notify_sends_state_and_fds() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        // Only this test touches NOTIFY_SOCKET in this (nextest) process.
        std::env::set_var("NOTIFY_SOCKET", &path);
        assert!(notify("FDSTORE=1\nFDNAME=fuse", &[a.as_raw_fd()]).unwrap());
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            rx.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        let fds: Vec<RawFd> = msg
            .cmsgs()
            .unwrap()
            .filter_map(|c| match c {
                nix::sys::socket::ControlMessageOwned::ScmRights(f) => Some(f),
                _ => None,
            })
            .flatten()
            .collect();
        let n = msg.bytes;
        assert_eq!(&buf[..n], b"FDSTORE=1\nFDNAME=fuse");
        assert_eq!(fds.len(), 1);
        assert!(!notify("READY=1", &[]).unwrap());
    }
}
