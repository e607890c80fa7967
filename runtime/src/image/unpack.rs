//! Unpacking image files: recognise the format from its first bytes (tar, plain or
//! xz/gzip/bzip2/zstd-compressed, or squashfs), list it and check the listing
//! ([`super::scan`]), then extract it with the host's `tar` or `unsquashfs`, skipping device
//! nodes. Runs as root of a user namespace that maps only the container's ids
//! ([`crate::idmap::Ids::Container`]), in the directory it unpacks into (its working
//! directory): owners in the archive become the container's ids, setuid bits and hard links
//! are kept, and nothing of the user's can be reached or given away. What the helpers print
//! is captured, cleaned of control characters and shown when they fail. When stdout is a
//! terminal the bytes fed to `tar` are shown as a progress bar.

use std::fs::File;
use std::io::{BufRead, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::error::{Context, Error, Result};

use super::scan::{parse_line, Part, Summary};

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
    rewind(file, name)?;
    // Said without the name: callers say which file ("cannot import FILE: …").
    detect(&head[..n]).ok_or_else(|| {
        Error::Usage("neither a tarball (plain, xz, gzip, bzip2, zstd) nor a squashfs image".into())
    })
}

fn rewind(file: &mut File, name: &str) -> Result<()> {
    file.seek(SeekFrom::Start(0))
        .map(|_| ())
        .ctx(|| format!("rewind {name}"))
}

/// The longest listing line lxr reads (a name is at most PATH_MAX anyway).
const LINE_MAX: u64 = 64 << 10;

/// What a helper printed on stderr, at most this much of its end.
const STDERR_KEPT: usize = 4096;

/// A helper program on an image file: stdin the file (or a pipe), stderr captured, never the
/// user's terminal (a program parsing a hostile archive is the likeliest to be subverted).
/// The decompressors it starts are held to a memory limit (an xz header may ask for 1.5 GiB).
fn helper(prog: &str) -> Command {
    let mut c = Command::new(prog);
    c.env("XZ_DEFAULTS", "--memlimit-decompress=1GiB")
        .stderr(Stdio::piped());
    c
}

/// Wait for a helper; its end of stderr, cleaned, in the error when it failed.
fn finish(mut child: Child, what: &str) -> Result<()> {
    let mut err = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut err);
    }
    let status = child.wait().ctx(|| format!("wait for {what}"))?;
    if status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&err[err.len().saturating_sub(STDERR_KEPT)..]).to_string();
    Err(Error::Setup(format!(
        "{what} failed ({status}){}{}",
        if text.trim().is_empty() { "" } else { ":\n" },
        crate::text::clean(text.trim_end(), true)
    )))
}

/// List `file` and check every entry ([`Summary::add`]); the file is rewound afterwards.
pub fn scan(file: &mut File, name: &str, part: Part, summary: &mut Summary) -> Result<()> {
    let format = format_of(file, name)?;
    let stdin = file.try_clone().ctx(|| format!("dup {name}"))?;
    let mut cmd = match format {
        Format::Tar(filter) => {
            let mut c = helper("tar");
            c.args([
                "--list",
                "--verbose",
                "--numeric-owner",
                "--quoting-style=escape",
            ]);
            c.args(filter).arg("--file=-");
            c
        }
        Format::Squashfs => {
            let mut c = helper("unsquashfs");
            c.args(["-lln", "/dev/stdin"]);
            c
        }
    };
    let what = format!("listing {name}");
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .spawn()
        .ctx(|| format!("run {:?} (is it installed?)", cmd.get_program()))?;
    let read = match child.stdout.take() {
        Some(out) => read_listing(out, format == Format::Squashfs, part, summary),
        None => Err(Error::Host("no listing".into())),
    };
    if read.is_err() {
        let _ = child.kill();
    }
    let done = finish(child, &what);
    read?;
    done?;
    rewind(file, name)
}

fn read_listing(out: impl Read, squashfs: bool, part: Part, summary: &mut Summary) -> Result<()> {
    let mut r = std::io::BufReader::new(out);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut r)
            .take(LINE_MAX)
            .read_until(b'\n', &mut line)
            .ctx(|| "read the listing".into())?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && n as u64 >= LINE_MAX {
            return Err(Error::Usage(
                "image refused: a listing line is too long".into(),
            ));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches('\n');
        if text.is_empty() {
            continue;
        }
        let e = parse_line(text, squashfs)
            .map_err(|why| Error::Usage(format!("image refused: {why}")))?;
        summary.add(&e, part)?;
    }
}

/// Extract `file` into the working directory, skipping the device nodes `scan` found. The
/// metadata of a split image skips `rootfs/` (its rootfs is the other file); a unified
/// image or a split image's metadata leave the owner and mode of the directory itself alone
/// (the archive's `./` entry would otherwise take them).
pub fn extract(file: &mut File, name: &str, part: Part, devices: &[String]) -> Result<()> {
    match format_of(file, name)? {
        Format::Tar(filter) => extract_tar(file, name, filter, part, devices),
        Format::Squashfs => extract_squashfs(file, name, devices),
    }
}

fn extract_tar(
    file: &mut File,
    name: &str,
    filter: Option<&str>,
    part: Part,
    devices: &[String],
) -> Result<()> {
    let mut cmd = helper("tar");
    cmd.args(["--extract", "--file=-", "--numeric-owner", "--same-owner"])
        .args([
            "--same-permissions",
            "--delay-directory-restore",
            "--anchored",
        ]);
    // Exact names first (tar's --wildcards/--no-wildcards apply to the options after them).
    cmd.arg("--no-wildcards");
    for d in devices {
        cmd.arg(format!("--exclude={d}"));
    }
    if part == Part::Metadata {
        cmd.args(["--exclude=rootfs", "--exclude=./rootfs"]);
    }
    cmd.args(["--wildcards", "--exclude=dev/*", "--exclude=./dev/*"])
        .args(["--exclude=rootfs/dev/*", "--exclude=./rootfs/dev/*"]);
    if part != Part::Rootfs {
        cmd.arg("--no-overwrite-dir");
    }
    cmd.args(filter).stdout(Stdio::null());
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .ctx(|| "run tar (is it installed?)".into())?;
    let fed = match child.stdin.take() {
        Some(stdin) => feed(file, stdin, name),
        None => Err(Error::Host("tar has no stdin".into())),
    };
    let done = finish(child, &format!("unpacking {name}"));
    done?;
    fed
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

fn extract_squashfs(file: &mut File, name: &str, devices: &[String]) -> Result<()> {
    // unsquashfs wants a path: it gets the open file as its stdin and reopens it by name.
    let stdin = file.try_clone().ctx(|| format!("dup {name}"))?;
    let mut cmd = helper("unsquashfs");
    cmd.args(["-force", "-no-xattrs", "-no-progress", "-dest", "."])
        .stdout(Stdio::null());
    // Options first: what follows the image names the files to skip.
    cmd.arg("-no-wildcards");
    if !devices.is_empty() {
        cmd.arg("-excludes");
    }
    cmd.arg("/dev/stdin").args(devices).stdin(stdin);
    let child = cmd
        .spawn()
        .ctx(|| "run unsquashfs (is squashfs-tools installed?)".into())?;
    finish(child, &format!("unpacking {name}"))
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
