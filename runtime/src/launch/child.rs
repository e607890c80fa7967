//! The container's side of a start: the **intermediate** process (new user namespace, mapped
//! by the monitor; the other namespaces; the rootfs entered with the user's credentials; then
//! root of the namespace; forks init and exits at once, so that init's parent is the monitor
//! and no lxr process stays in the container's cgroup) and **init** (PID 1: mounts, console,
//! hostname, loopback, capabilities, seccomp, exec of `/sbin/init`).

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sched::{unshare, CloneFlags};
use nix::sys::socket::{AddressFamily, SockFlag, SockType};
use nix::unistd::{fork, ForkResult};

use super::{before_exec, boot, console, mounts, seccomp, Spec, DROP_CAPS};
use crate::channel::{End, Msg};
use crate::error::{Context, Error, Result};
use crate::userns::{become_root, child_mapped};

fn os(what: &str) -> Error {
    Error::Os {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

/// The intermediate child: user namespace, the other namespaces, then fork init. `notify` is
/// the monitor's readiness socket, if the init speaks that protocol.
/// `resolv` is the `resolv.conf` of a container that gets a network: its init then waits for
/// the monitor's [`Msg::NetUp`] before it execs.
pub fn intermediate(spec: &Spec, chan: &End, notify: Option<&Path>, resolv: Option<&str>) -> i32 {
    let fail = |e: Error| {
        chan.fail(&e);
        1
    };
    if let Err(e) = child_mapped(chan) {
        return fail(e);
    }
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWCGROUP
        | CloneFlags::CLONE_NEWPID;
    if let Err(e) = unshare(flags).ctx(|| "unshare namespaces".into()) {
        return fail(e);
    }
    // Still with the user's credentials: the rootfs (and the monitor's notify socket) are
    // reached through the user's private directories, which the container's root cannot
    // search. From here on the container's processes work relative to the rootfs mount.
    // An overlay is mounted once this process is the container's root (see
    // `storage::overlay`): its layers are opened here, then mounted after `become_root`.
    let entered = mounts::enter_rootfs(&spec.rootfs, spec.overlay.as_ref()).and_then(|ov| {
        let n = notify
            .map(|p| {
                nix::fcntl::open(
                    p,
                    nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .ctx(|| format!("open {}", p.display()))
            })
            .transpose()?;
        Ok((ov, n))
    });
    // Disk devices' sources, opened (and checked to be the user's) with the user's
    // credentials, bound once this is the container's root and the rootfs is mounted (see
    // [`super::disks`]: targets are resolved in the mounted root, the working directory).
    let entered = entered.and_then(|(ov, n)| Ok((ov, n, super::disks::open_all(&spec.keys)?)));
    let entered = entered.and_then(|(ov, n, disks)| {
        become_root()?;
        if let Some(ov) = ov {
            ov.mount()?;
        }
        super::disks::bind_all(&disks)?;
        Ok(n)
    });
    let notify = match entered {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    // The namespaces the network stack joins, by descriptor: the init cannot be opened
    // through /proc by the user until it execs (it is not dumpable). Opened before the fork:
    // the init's `pivot_root` moves the root of every process of this mount namespace still
    // at the old one, this process's too, after which `/proc/self` would be the container's
    // `/proc`, where this process has no pid (the network then failed with "the container's
    // namespaces did not arrive", under load).
    let ns = ["user", "net"]
        .map(|n| std::fs::File::open(format!("/proc/self/ns/{n}")).map(std::os::fd::OwnedFd::from));
    // SAFETY: single-threaded; the child becomes the container's init and execs or _exits.
    match unsafe { fork() } {
        Err(e) => fail(Error::from_nix("fork init", e)),
        Ok(ForkResult::Child) => {
            drop(ns);
            let e = init(spec, chan, notify.as_ref(), resolv)
                .err()
                .unwrap_or_else(|| Error::Setup("exec returned".into()));
            chan.fail(&e);
            super::exit_forked(1)
        }
        Ok(ForkResult::Parent { child }) => {
            let fds: Vec<std::os::fd::RawFd> = ns
                .iter()
                .flatten()
                .map(std::os::fd::AsRawFd::as_raw_fd)
                .collect();
            match chan.send_with(&Msg::Init(child.as_raw() as u32), &fds) {
                Ok(()) => 0,
                Err(e) => fail(e),
            }
        }
    }
}

/// PID 1 of the container: everything up to exec of `/sbin/init`. Its working directory is
/// the rootfs mount ([`mounts::enter_rootfs`]).
fn init(
    spec: &Spec,
    chan: &End,
    notify: Option<&std::os::fd::OwnedFd>,
    resolv: Option<&str>,
) -> Result<()> {
    let root = Path::new(".");
    // What is made from here on (`/dev`'s directories, `/run/systemd`, mount points) belongs
    // to the container and is read by its unprivileged users (dbus-daemon as `messagebus`
    // sends READY=1 to `/run/systemd/notify`): the usual 022, not lxr's own 077.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    mounts::setup(root, spec.lxcfs.as_deref())?;
    if let Some(n) = notify {
        mounts::bind_notify(root, n, boot::NOTIFY_PATH)?;
    }
    let (master, pts) = console::open_pty(root)?;
    mounts::bind_console(root, &pts)?;
    let peer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&pts)
        .ctx(|| format!("open {}", pts.display()))?;
    chan.send_with(&Msg::Console, &[master.as_raw_fd(), peer.as_raw_fd()])?;
    drop((master, peer));
    nix::unistd::sethostname(&spec.name).ctx(|| "sethostname".into())?;
    loopback_up()?;
    mounts::pivot(root)?;
    console::take_console()?;
    if let Some(r) = resolv {
        // After the pivot: nothing but the container's own files is in reach.
        write_resolv_conf(r)?;
        // The stack configures eth0 while the mounts are made; init runs with it up.
        if !chan.expect(&Msg::NetUp)? {
            return Err(Error::Setup("the monitor went away".into()));
        }
    }
    for cap in DROP_CAPS {
        caps::drop(None, caps::CapSet::Bounding, *cap).map_err(|e| {
            Error::Setup(format!(
                "drop {cap} from the bounding set: {}",
                e.to_string()
                    .trim_start_matches("PR_CAPBSET_DROP failure: ")
            ))
        })?;
    }
    seccomp::install()?;
    let prog = CString::new("/sbin/init").map_err(|_| Error::Setup("init path".into()))?;
    // `container=lxc`: images (systemd included) behave as under LXC and LXD.
    let mut env = vec![
        "container=lxc".to_string(),
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "TERM=linux".into(),
        "HOME=/root".into(),
    ];
    if notify.is_some() {
        env.push(format!("NOTIFY_SOCKET={}", boot::NOTIFY_PATH));
    }
    let env: Vec<CString> = env
        .into_iter()
        .filter_map(|e| CString::new(e).ok())
        .collect();
    before_exec()?;
    nix::unistd::execve(&prog, std::slice::from_ref(&prog), &env)
        .ctx(|| "exec /sbin/init".into())?;
    Ok(())
}

/// `/etc/resolv.conf` pointing at the stack's DNS forwarder: written when there is none, or when
/// it is one lxr wrote (its first line is [`crate::net::RESOLV_MARK`]) or empty; a symlink
/// (systemd-resolved's) or the image's own file is left alone.
fn write_resolv_conf(text: &str) -> Result<()> {
    let p = Path::new("/etc/resolv.conf");
    if !Path::new("/etc").is_dir() {
        return Ok(());
    }
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).ctx(|| "stat /etc/resolv.conf".into()),
        Ok(m) if m.is_file() => {
            let old = std::fs::read_to_string(p).unwrap_or_default();
            if !(old.trim().is_empty() || old.starts_with(crate::net::RESOLV_MARK)) {
                return Ok(());
            }
        }
        Ok(_) => return Ok(()),
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .ctx(|| "write /etc/resolv.conf".into())
}

/// Bring up `lo` in the container's network namespace.
fn loopback_up() -> Result<()> {
    let sock = nix::sys::socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "socket for lo".into())?;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own (nix has no call for
    // an interface's flags).
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(os("read lo's flags"));
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(os("bring lo up"));
        }
    }
    Ok(())
}
