//! Unpacking image files: recognise the format from its first bytes (tar, plain or
//! xz/gzip/bzip2/zstd-compressed, or squashfs) and extract it with the host's `tar` or
//! `unsquashfs`. Called as root of the user's container namespace, so owners in the archive
//! become the container's ids, setuid bits and hard links are kept as they are.
//! When stdout is a terminal the bytes fed to `tar` are shown as a progress bar.

use std::fs::File;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Context, Error, Result};

/// What an image file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A tarball; the `tar` option that decompresses it, if it is compressed.
    Tar(Option<&'static str>),
    /// A squashfs filesystem image.
    Squashfs,
}

/// Recognise an image file from its first 512 bytes.
pub fn detect(head: &[u8]) -> Option<Format> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Format::Tar(Some("--xz")))
    } else if starts(&[0x1f, 0x8b]) {
        Some(Format::Tar(Some("--gzip")))
    } else if starts(b"BZh") {
        Some(Format::Tar(Some("--bzip2")))
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Format::Tar(Some("--zstd")))
    } else if starts(b"hsqs") {
        Some(Format::Squashfs)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Format::Tar(None))
    } else {
        None
    }
}

/// Read the format of an open file (and rewind it).
pub fn format_of(file: &mut File, name: &str) -> Result<Format> {
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]).ctx(|| format!("read {name}"))? {
            0 => break,
            k => n += k,
        }
    }
    file.seek(SeekFrom::Start(0))
        .ctx(|| format!("rewind {name}"))?;
    detect(&head[..n]).ok_or_else(|| {
        Error::Usage(format!(
            "{name} is neither a tarball (plain, xz, gzip, bzip2, zstd) nor a squashfs image"
        ))
    })
}

/// Extract `file` into the existing directory `dest`. `keep_dest` leaves the owner and mode
/// of `dest` itself alone (the archive's `./` entry would otherwise take them). Device
/// nodes cannot be made in a user namespace; they are skipped (lxr mounts its own `/dev`).
pub fn extract(file: &mut File, name: &str, dest: &Path, keep_dest: bool) -> Result<()> {
    match format_of(file, name)? {
        Format::Tar(filter) => extract_tar(file, name, filter, dest, keep_dest),
        Format::Squashfs => extract_squashfs(file, name, dest),
    }
}

fn extract_tar(
    file: &mut File,
    name: &str,
    filter: Option<&str>,
    dest: &Path,
    keep_dest: bool,
) -> Result<()> {
    let mut cmd = Command::new("tar");
    cmd.args(["--extract", "--file=-", "--numeric-owner", "--same-owner"])
        .args(["--same-permissions", "--delay-directory-restore"])
        .args(["--anchored", "--wildcards"])
        .args(["--exclude=dev/*", "--exclude=./dev/*"])
        .args(["--exclude=rootfs/dev/*", "--exclude=./rootfs/dev/*"])
        .arg("--directory")
        .arg(dest);
    if keep_dest {
        cmd.arg("--no-overwrite-dir");
    }
    if let Some(f) = filter {
        cmd.arg(f);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .ctx(|| "run tar (is it installed?)".into())?;
    let fed = match child.stdin.take() {
        Some(stdin) => feed(file, stdin, name),
        None => Err(Error::Host("tar has no stdin".into())),
    };
    let status = child.wait().ctx(|| "wait for tar".into())?;
    fed?;
    if !status.success() {
        return Err(Error::Setup(format!(
            "tar could not unpack {name} ({status})"
        )));
    }
    Ok(())
}

/// Copy the file into tar, drawing a progress bar on a terminal.
fn feed(file: &mut File, mut to: impl Write, name: &str) -> Result<()> {
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let label = Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| name.to_string());
    let mut bar = Progress::new(&label, total);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = file.read(&mut buf).ctx(|| format!("read {name}"))?;
        if n == 0 {
            break;
        }
        if let Err(e) = to.write_all(&buf[..n]) {
            // tar stopped reading: its exit status says why.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(e).ctx(|| "write to tar".into());
        }
        bar.advance(n as u64);
    }
    bar.finish();
    Ok(())
}

fn extract_squashfs(file: &mut File, name: &str, dest: &Path) -> Result<()> {
    // unsquashfs wants a path: it gets the open file as its stdin and reopens it by name
    // (our own /proc/<pid>/fd is closed to it once we changed credentials).
    let stdin = file.try_clone().ctx(|| format!("dup {name}"))?;
    let mut cmd = Command::new("unsquashfs");
    cmd.args(["-force", "-no-xattrs", "-ignore-errors"]);
    if !std::io::stdout().is_terminal() {
        cmd.arg("-no-progress").stdout(Stdio::null());
    }
    // Options first: what follows the image names the files to extract.
    cmd.arg("-dest").arg(dest).arg("/dev/stdin").stdin(stdin);
    let status = cmd
        .status()
        .ctx(|| "run unsquashfs (is squashfs-tools installed?)".into())?;
    if !status.success() {
        return Err(Error::Setup(format!(
            "unsquashfs could not unpack {name} ({status})"
        )));
    }
    Ok(())
}

/// A one-line progress bar on stderr, drawn only when stdout is a terminal.
struct Progress {
    label: String,
    total: u64,
    done: u64,
    shown: Option<u64>,
    on: bool,
}

impl Progress {
    fn new(label: &str, total: u64) -> Progress {
        Progress {
            label: label.to_string(),
            total,
            done: 0,
            shown: None,
            on: std::io::stdout().is_terminal() && total > 0,
        }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        let pct = (self.done.min(self.total) * 100)
            .checked_div(self.total)
            .unwrap_or(100);
        if self.on && self.shown != Some(pct) {
            self.shown = Some(pct);
            let width = 30usize;
            let fill = (pct as usize * width) / 100;
            eprint!(
                "\rUnpacking {}: [{}{}] {pct:>3}% {:.1}/{:.1} MiB",
                self.label,
                "#".repeat(fill),
                " ".repeat(width - fill),
                self.done as f64 / 1048576.0,
                self.total as f64 / 1048576.0
            );
        }
    }

    fn finish(&mut self) {
        if self.on && self.shown.is_some() {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_by_their_magic() {
        assert_eq!(detect(b"\xfd7zXZ\0rest"), Some(Format::Tar(Some("--xz"))));
        assert_eq!(detect(b"\x1f\x8b\x08"), Some(Format::Tar(Some("--gzip"))));
        assert_eq!(detect(b"hsqs...."), Some(Format::Squashfs));
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(detect(&tar), Some(Format::Tar(None)));
        assert_eq!(detect(b"metadata: yes"), None);
    }
}
