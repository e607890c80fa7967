//! The built-in `busybox` image: the host's static busybox with a symlink per applet,
//! `/sbin/init` a hard link to it (as LXC's busybox template makes it), and an inittab for a
//! container (no gettys on real ttys). Built as root of the user's container user namespace,
//! so every file belongs to the container's root.
//!
//! busybox's own `free`, `uptime` and `top` ask sysinfo(2), which no FUSE filesystem can
//! virtualise, so they would print the host's memory whatever lxcfs serves. The image
//! therefore carries the host's procps tools (which read `/proc/meminfo` & co., as in any
//! distribution image) with the shared libraries they need, when the host has them. And
//! since busybox's `sh` runs its own applets before searching PATH, `/bin/sh` is the host's
//! bash (busybox's shell stays available as `ash`), so `sh -c free` is procps's too.

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
    for tool in HOST_TOOLS {
        let host = Path::new(tool);
        if host.exists() {
            copy_with_libraries(root, host)?;
            // The applet may be linked elsewhere on PATH too (busybox's `ps` is /bin/ps).
            if let Some(name) = host.file_name() {
                for dir in ["bin", "sbin", "usr/sbin"] {
                    let link = root.join(dir).join(name);
                    if link.is_symlink() {
                        std::fs::remove_file(&link).ctx(|| format!("rm {}", link.display()))?;
                    }
                }
            }
        }
    }
    if root.join(HOST_SHELL.trim_start_matches('/')).exists() {
        let sh = root.join("bin/sh");
        std::fs::remove_file(&sh).ctx(|| format!("rm {}", sh.display()))?;
        symlink(HOST_SHELL, &sh).ctx(|| format!("symlink {}", sh.display()))?;
    }
    copy_tree(
        Path::new(TERMINFO),
        &root.join(TERMINFO.trim_start_matches('/')),
    )?;
    Ok(())
}

/// The shell `/bin/sh` points at when the host has it.
const HOST_SHELL: &str = "/usr/bin/bash";

/// Host procps tools (and glibc's getconf, whose CPU count comes from lxcfs's
/// `/sys/devices/system/cpu/online`, and bash) that replace busybox applets of the same name.
pub const HOST_TOOLS: &[&str] = &[
    HOST_SHELL,
    "/usr/bin/free",
    "/usr/bin/uptime",
    "/usr/bin/top",
    "/usr/bin/ps",
    "/usr/bin/vmstat",
    "/usr/bin/getconf",
];

/// Terminal descriptions `top` needs.
const TERMINFO: &str = "/lib/terminfo";

/// Copy the host binary `host` into `root` at the same path, replacing a busybox applet
/// link, with every shared library `ldd` names (and the dynamic loader) at their host paths.
fn copy_with_libraries(root: &Path, host: &Path) -> Result<()> {
    let out = Command::new("ldd")
        .arg(host)
        .output()
        .ctx(|| format!("ldd {}", host.display()))?;
    let mut files = vec![host.to_path_buf()];
    if out.status.success() {
        files.extend(ldd_paths(&String::from_utf8_lossy(&out.stdout)));
    }
    for file in files {
        let rel = file.strip_prefix("/").unwrap_or(&file);
        let dest = root.join(rel);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).ctx(|| format!("mkdir {}", dir.display()))?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(&dest) {
            if meta.file_type().is_symlink() {
                std::fs::remove_file(&dest).ctx(|| format!("rm {}", dest.display()))?;
            } else {
                continue; // already copied for an earlier tool
            }
        }
        std::fs::copy(&file, &dest).ctx(|| format!("copy {}", file.display()))?;
    }
    Ok(())
}

/// The absolute paths in `ldd` output: `libx.so => /lib/libx.so (0x…)` and the loader line.
fn ldd_paths(text: &str) -> Vec<std::path::PathBuf> {
    text.lines()
        .filter_map(|line| {
            let target = match line.split_once("=>") {
                Some((_, right)) => right,
                None => line,
            };
            let path = target.split_whitespace().next()?;
            path.starts_with('/')
                .then(|| std::path::PathBuf::from(path))
        })
        .collect()
}

/// Copy a small directory tree of regular files and symlinks (skipped when absent).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    std::fs::create_dir_all(to).ctx(|| format!("mkdir {}", to.display()))?;
    for entry in entries.flatten() {
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            if let Ok(target) = std::fs::read_link(&src) {
                symlink(target, &dst).ctx(|| format!("symlink {}", dst.display()))?;
            }
        } else {
            std::fs::copy(&src, &dst).ctx(|| format!("copy {}", src.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ldd_paths;
    use std::path::PathBuf;

    #[test]
    fn ldd_output_gives_libraries_and_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibproc2.so.0 => /lib/x86_64-linux-gnu/libproc2.so.0 (0x00007f1)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        assert_eq!(
            ldd_paths(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libproc2.so.0"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }
}
