//! The built-in `busybox` image: the host's static busybox with a symlink per applet,
//! `/sbin/init` a hard link to it (as LXC's busybox template makes it), and an inittab for a
//! container (no gettys on real ttys). Built as root of the user's container user namespace,
//! so every file belongs to the container's root.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::error::{Context, Error, Result};

/// Where the host's static busybox lives (Debian's busybox-static).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

const INITTAB: &str = "\
::sysinit:/etc/init.d/rcS
console::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
::restart:/sbin/init
";

const RCS: &str = "#!/bin/sh\nmount -a 2>/dev/null\n";

/// Create the busybox rootfs at `root` (which must not exist). Call as root of the
/// container's user namespace.
pub fn build(root: &Path, busybox: &Path) -> Result<()> {
    let mk = |rel: &str, mode: u32| -> Result<()> {
        let p = root.join(rel);
        std::fs::create_dir_all(&p).ctx(|| format!("mkdir {}", p.display()))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .ctx(|| format!("chmod {}", p.display()))
    };
    mk("", 0o755)?;
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc/init.d",
        "dev",
        "proc",
        "sys",
        "run",
        "var/log",
        "mnt",
        "home",
    ] {
        mk(d, 0o755)?;
    }
    mk("tmp", 0o1777)?;
    mk("root", 0o700)?;
    let bb = root.join("bin/busybox");
    std::fs::copy(busybox, &bb).ctx(|| format!("copy {}", busybox.display()))?;
    std::fs::set_permissions(&bb, std::fs::Permissions::from_mode(0o755))
        .ctx(|| "chmod busybox".into())?;
    std::fs::hard_link(&bb, root.join("sbin/init")).ctx(|| "link /sbin/init".into())?;
    let list = Command::new(busybox)
        .arg("--list-full")
        .output()
        .ctx(|| format!("{} --list-full", busybox.display()))?;
    if !list.status.success() {
        return Err(Error::Host(format!(
            "{} --list-full failed",
            busybox.display()
        )));
    }
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "sbin/init" || applet == "bin/busybox" {
            continue;
        }
        let link = root.join(applet);
        if link.exists() {
            continue;
        }
        if let Some(dir) = link.parent() {
            std::fs::create_dir_all(dir).ctx(|| format!("mkdir {}", dir.display()))?;
        }
        symlink("/bin/busybox", &link).ctx(|| format!("symlink {}", link.display()))?;
    }
    let write = |rel: &str, text: &str, mode: u32| -> Result<()> {
        let p = root.join(rel);
        std::fs::write(&p, text).ctx(|| format!("write {}", p.display()))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .ctx(|| format!("chmod {}", p.display()))
    };
    write("etc/inittab", INITTAB, 0o644)?;
    write("etc/init.d/rcS", RCS, 0o755)?;
    write("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)?;
    write("etc/group", "root:x:0:\ntty:x:5:\n", 0o644)?;
    write("etc/fstab", "", 0o644)?;
    write("etc/hostname", "busybox\n", 0o644)?;
    Ok(())
}
