//! The container's filesystem, set up by its init process (PID 1 of the new pid namespace, root
//! of the new user namespace, in the new mount namespace) before it execs `/sbin/init`: the
//! rootfs as a mount, `/proc`, read-only `/sys`, a tmpfs `/dev` with the host's harmless device
//! nodes bound in, a private devpts, `/dev/shm`, `/run`, lxcfs's files when lxcfs is mounted,
//! then `pivot_root`. Every step is fatal on failure: a half-built root must never run init.

use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::beneath::{Dir, Kind};
use crate::error::{Context, Result};
use crate::storage::overlay::{Layers, Prepared};

/// Host device nodes bound into the container's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Host device nodes bound in when the host has them (FUSE and tun are usable in a user
/// namespace: FUSE mounts, and tun devices in the container's own network namespace).
const OPTIONAL_DEVICES: &[&str] = &["fuse", "net/tun"];

fn mnt(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    mount(src, target, fstype, flags, data).ctx(|| {
        format!(
            "mount {} on {} ({})",
            src.unwrap_or("-"),
            target.display(),
            fstype.unwrap_or("bind")
        )
    })
}

fn bind(src: &Path, target: &Path, extra: MsFlags) -> Result<()> {
    mount(
        Some(src),
        target,
        None::<&str>,
        MsFlags::MS_BIND | extra,
        None::<&str>,
    )
    .ctx(|| format!("bind {} on {}", src.display(), target.display()))
}

/// Is an lxcfs (ours or lxcfs 5.x) mounted at `mount_point`?
pub fn lxcfs_mounted(mount_point: &Path) -> bool {
    cgroups::mountinfo::read(Path::new("/proc")).is_ok_and(|ms| {
        ms.iter()
            .any(|m| m.mount_point == mount_point && m.fstype == "fuse.lxcfs")
    })
}

/// In the new mount namespace, still with the user's credentials (the rootfs lies in the
/// user's private directory, which the container's root cannot search): make every mount
/// private, bind the rootfs on itself and make it the working directory. Everything after works
/// relative to it. For an overlay ([`crate::storage::overlay`]) its layers and mount point are
/// only opened here: the caller mounts it ([`Prepared::mount`]) once it is the container's root,
/// which also makes it the working directory.
pub fn enter_rootfs(rootfs: &Path, overlay: Option<&Layers>) -> Result<Option<Prepared>> {
    let md = std::fs::symlink_metadata(rootfs).ctx(|| format!("stat {}", rootfs.display()))?;
    if !md.is_dir() {
        return Err(crate::error::Error::Setup(format!(
            "{} is not a directory",
            rootfs.display()
        )));
    }
    // Nothing we do here may propagate back to the host.
    mnt(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    if let Some(layers) = overlay {
        return crate::storage::overlay::prepare(layers, rootfs).map(Some);
    }
    bind(rootfs, rootfs, MsFlags::MS_REC)?;
    nix::unistd::chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    Ok(None)
}

/// The top-level directories lxr mounts over. The rootfs is the image's and container root's
/// to shape: one of them being a symlink (to anywhere) or a file is refused with a clear
/// error instead of mounting somewhere else; a missing one is made.
fn check_targets(root: &Path) -> Result<()> {
    let dir = Dir::open(root)?;
    for t in ["proc", "sys", "dev", "run"] {
        match dir.kind(t)? {
            Some(Kind::Dir) => {}
            None => {
                dir.mkdir(t, 0o755)?;
            }
            Some(_) => {
                return Err(crate::error::Error::Setup(format!(
                    "the container's /{t} is not a directory (a symlink or a file): refusing to \
                     mount over it"
                )))
            }
        }
    }
    Ok(())
}

/// Build the container's mounts under `root` (the rootfs mount, see [`enter_rootfs`]).
pub fn setup(root: &Path, lxcfs: Option<&Path>) -> Result<()> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    check_targets(root)?;
    mnt(Some("proc"), &root.join("proc"), Some("proc"), nosuid, None)?;
    mnt(
        Some("sysfs"),
        &root.join("sys"),
        Some("sysfs"),
        nosuid | MsFlags::MS_RDONLY,
        None,
    )?;
    cgroup2(root)?;
    let dev = root.join("dev");
    mnt(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=65536k"),
    )?;
    for d in DEVICES {
        let target = dev.join(d);
        std::fs::write(&target, b"").ctx(|| format!("create {}", target.display()))?;
        bind(&Path::new("/dev").join(d), &target, MsFlags::empty())?;
    }
    for d in OPTIONAL_DEVICES {
        let host = Path::new("/dev").join(d);
        if !host.exists() {
            continue;
        }
        let target = dev.join(d);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).ctx(|| format!("mkdir {}", parent.display()))?;
        }
        std::fs::write(&target, b"").ctx(|| format!("create {}", target.display()))?;
        bind(&host, &target, MsFlags::empty())?;
    }
    for d in ["pts", "shm", "mqueue"] {
        std::fs::create_dir(dev.join(d)).ctx(|| format!("mkdir /dev/{d}"))?;
    }
    mnt(
        Some("devpts"),
        &dev.join("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    symlink("pts/ptmx", dev.join("ptmx")).ctx(|| "symlink /dev/ptmx".into())?;
    mnt(
        Some("tmpfs"),
        &dev.join("shm"),
        Some("tmpfs"),
        nosuid,
        Some("mode=1777"),
    )?;
    // mqueue needs an IPC namespace of our own, which we have; tolerate kernels without it.
    let _ = mount(
        Some("mqueue"),
        &dev.join("mqueue"),
        Some("mqueue"),
        nosuid,
        None::<&str>,
    );
    for (l, t) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(t, dev.join(l)).ctx(|| format!("symlink /dev/{l}"))?;
    }
    std::fs::write(dev.join("console"), b"").ctx(|| "create /dev/console".into())?;
    mnt(
        Some("tmpfs"),
        &root.join("run"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )?;
    // What systemd (and other software) reads to know it runs in a container, as under LXC.
    std::fs::create_dir_all(root.join("run/systemd")).ctx(|| "mkdir /run/systemd".into())?;
    std::fs::write(root.join("run/systemd/container"), b"lxc\n")
        .ctx(|| "write /run/systemd/container".into())?;
    boot_id(root)?;
    if let Some(l) = lxcfs {
        // What lxcfs offers, as LXC's hook binds it: every entry of its `proc/` (files such as
        // `meminfo`, the `pressure/` directory) over the container's own where that exists.
        for name in lxcfs_entries(&l.join("proc")) {
            let target = root.join("proc").join(&name);
            if target.exists() {
                bind(&l.join("proc").join(&name), &target, MsFlags::empty())?;
            }
        }
        let cpu = l.join("sys/devices/system/cpu");
        let target = root.join("sys/devices/system/cpu");
        if cpu.is_dir() && target.is_dir() {
            bind(&cpu, &target, MsFlags::MS_REC)?;
        }
    }
    Ok(())
}

/// On a pure cgroup2 host, the container's `/sys/fs/cgroup` is cgroup2 mounted in its cgroup
/// namespace — its own subtree, which its root owns — as LXC's `cgroup:mixed` gives it: an init
/// such as systemd cannot make a v1 hierarchy there (no user namespace may) and stops with
/// "Failed to mount cgroup". On a hybrid or v1 host the init mounts what it needs itself.
fn cgroup2(root: &Path) -> Result<()> {
    let unified =
        cgroups::Layout::detect(Path::new("/proc")).is_ok_and(|l| l.mode == cgroups::Mode::Unified);
    if !unified {
        return Ok(());
    }
    let target = root.join("sys/fs/cgroup");
    if !target.is_dir() {
        return Ok(());
    }
    mnt(
        Some("cgroup2"),
        &target,
        Some("cgroup2"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )
}

/// The names in an lxcfs directory (none if it cannot be read).
fn lxcfs_entries(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A fresh boot id for every start (the host's would make every boot of every container the
/// same boot to `journalctl -b`): a random UUID in the container's `/dev`, bound over
/// `/proc/sys/kernel/random/boot_id`, as LXC does.
fn boot_id(root: &Path) -> Result<()> {
    let mut b = [0u8; 16];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").ctx(|| "open /dev/urandom".into())?,
        &mut b,
    )
    .ctx(|| "read /dev/urandom".into())?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let id = format!(
        "{}-{}-{}-{}-{}\n",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    let file = root.join("dev/.lxr-boot-id");
    std::fs::write(&file, id).ctx(|| "write the boot id".into())?;
    bind(
        &file,
        &root.join("proc/sys/kernel/random/boot_id"),
        MsFlags::empty(),
    )
}

/// Bind the monitor's readiness socket (`notify`, an `O_PATH` descriptor opened before the
/// container's root could no longer reach it) at `at` in the container.
pub fn bind_notify(root: &Path, notify: &impl AsRawFd, at: &str) -> Result<()> {
    let target = root.join(at.trim_start_matches('/'));
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).ctx(|| format!("mkdir {}", parent.display()))?;
    }
    std::fs::write(&target, b"").ctx(|| format!("create {}", target.display()))?;
    let src = PathBuf::from(format!("/proc/self/fd/{}", notify.as_raw_fd()));
    bind(&src, &target, MsFlags::empty())
}

/// Bind the console pty (`/dev/pts/N` of the container's devpts) on `/dev/console`.
pub fn bind_console(root: &Path, pts: &Path) -> Result<()> {
    bind(pts, &root.join("dev/console"), MsFlags::empty())
}

/// `pivot_root` into `root` and drop the old root.
pub fn pivot(root: &Path) -> Result<()> {
    nix::unistd::chdir(root).ctx(|| format!("chdir {}", root.display()))?;
    nix::unistd::pivot_root(".", ".").ctx(|| "pivot_root".into())?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach the old root".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
    Ok(())
}
