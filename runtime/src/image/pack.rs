//! Packing a container's root filesystem into an LXD/Incus **unified image** tarball
//! (`metadata.yaml`, `templates/`, `rootfs/`, as Incus's image format documentation lays it
//! out), for `lxr publish`. Runs as root of a user namespace that maps only the container's
//! ids ([`crate::idmap::Ids::Container`]): `tar` reads the rootfs as the container's root,
//! so files keep their container ids (`--numeric-owner`), it cannot read anything of the
//! user's, and it follows no symlink (no `-h`): a symlink the container planted is archived
//! as a symlink. Sockets are skipped (tar's default), FIFOs archived as FIFOs (never opened).
//! Members are sorted by name; modification times are kept. The compressor writes to a file
//! the caller opened, held to a size limit (`RLIMIT_FSIZE`), so a huge rootfs fails instead of
//! filling the disk.

use std::fs::File;
use std::io::Read;
use std::process::{Child, Command, Stdio};

use crate::beneath::{Dir, Kind};
use crate::error::{Context, Error, Result};

/// How the tarball is compressed (`lxr publish --compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// A plain tarball.
    None,
    /// gzip (Incus's default).
    Gzip,
    /// bzip2.
    Bzip2,
    /// xz.
    Xz,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compressor and its arguments (reading stdin, writing stdout, deterministic: no
    /// name or time in a gzip header, one xz thread).
    fn program(self) -> Option<(&'static str, &'static [&'static str])> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some(("gzip", &["-n", "-c"])),
            Compression::Bzip2 => Some(("bzip2", &["-c"])),
            Compression::Xz => Some(("xz", &["-T1", "-c"])),
            Compression::Zstd => Some(("zstd", &["-q", "-c", "-T1"])),
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => ".tar",
            Compression::Gzip => ".tar.gz",
            Compression::Bzip2 => ".tar.bz2",
            Compression::Xz => ".tar.xz",
            Compression::Zstd => ".tar.zst",
        }
    }
}

/// What goes into the tarball.
pub struct Contents<'a> {
    /// The root filesystem.
    pub root: &'a Dir,
    /// A directory of the container's root, empty, to put `metadata.yaml` and `templates/`
    /// in.
    pub stage: &'a Dir,
    /// `metadata.yaml`'s text.
    pub metadata: &'a str,
    /// The templates directory to carry over, if any.
    pub templates: Option<&'a Dir>,
}

/// Write the unified tarball of `c` to `out`, at most `max` bytes. Must run as root of the
/// container's namespace (see the module).
pub fn pack(c: &Contents, out: File, compression: Compression, max: u64) -> Result<()> {
    c.stage
        .write("metadata.yaml", c.metadata.as_bytes(), 0o644)?;
    let mut members = vec!["metadata.yaml"];
    if let Some(t) = c.templates {
        // cp from the source image's templates, as create_rootfs copies a rootfs: symlinks
        // stay symlinks.
        t.inheritable()?;
        c.stage.chdir()?;
        run(Command::new("cp")
            .args(["--archive", "--no-target-directory"])
            .arg(t.proc_path().join("."))
            .arg("templates")
            .stdout(Stdio::null()))
        .map_err(|e| Error::Setup(format!("copying the image's templates: {e}")))?;
        if c.stage.kind("templates")? == Some(Kind::Dir) {
            members.push("templates");
        }
    }
    c.root.inheritable()?;
    c.stage.inheritable()?;
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_FSIZE, max, max)
        .ctx(|| "limit the file size".into())?;
    let mut tar = Command::new("tar");
    tar.args([
        "--create",
        "--file=-",
        "--numeric-owner",
        "--sort=name",
        "--format=gnu",
        "--warning=no-file-ignored",
    ])
    // `-C` paths are absolute: each is relative to the one before otherwise.
    .arg("-C")
    .arg(c.stage.proc_path())
    .args(&members)
    .arg("-C")
    .arg(c.root.proc_path())
    // `./x` → `rootfs/x` in names and hard-link targets, not in symlink targets.
    .arg("--transform=s,^\\.,rootfs,rhS")
    .arg(".")
    .stdin(Stdio::null())
    .stderr(Stdio::piped());
    match compression.program() {
        None => run(tar.stdout(out)),
        Some((prog, args)) => {
            tar.stdout(Stdio::piped());
            let mut t = tar.spawn().ctx(|| "run tar".into())?;
            let Some(tar_out) = t.stdout.take() else {
                let _ = t.kill();
                let _ = t.wait();
                return Err(Error::Host("no pipe from tar".into()));
            };
            let z = Command::new(prog)
                .args(args)
                .stdin(tar_out)
                .stdout(out)
                .stderr(Stdio::piped())
                .spawn()
                .ctx(|| format!("run {prog} (is it installed?)"));
            let z = match z {
                Ok(z) => z,
                Err(e) => {
                    let _ = t.kill();
                    let _ = t.wait();
                    return Err(e);
                }
            };
            let tar_done = finish(t, "tar");
            let z_done = finish(z, prog);
            // The compressor's own failure (a full disk, the size limit) makes tar fail on a
            // broken pipe: say the first cause.
            z_done.and(tar_done)
        }
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let what = cmd.get_program().to_string_lossy().to_string();
    let child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| format!("run {what}"))?;
    finish(child, &what)
}

/// Wait for a helper; its last words, cleaned, in the error when it failed.
fn finish(mut child: Child, what: &str) -> Result<()> {
    // All of it is read (a helper blocked on a full stderr pipe would never end); the end
    // is kept.
    let mut err = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        let mut buf = [0u8; 8192];
        while let Ok(n) = e.read(&mut buf) {
            if n == 0 {
                break;
            }
            err.extend_from_slice(&buf[..n]);
            if err.len() > 16384 {
                err.drain(..err.len() - 4096);
            }
        }
    }
    let status = child.wait().ctx(|| format!("wait for {what}"))?;
    if status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&err[err.len().saturating_sub(4096)..]).to_string();
    let limit = if std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGXFSZ) {
        " (the image outgrew the size limit: --max-size)"
    } else {
        ""
    };
    Err(Error::Setup(format!(
        "{what} failed ({status}){limit}: {}",
        crate::text::clean(text.trim(), true)
    )))
}
