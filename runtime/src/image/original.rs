//! The files an image was imported from, kept byte for byte in `<fp>/export/` of the store so
//! that `lxr image export` gives them back and importing those again gives the same
//! fingerprint (LXD's fingerprint is the sha256 of the files, not of their content). An
//! import copies the file(s) there first and then fingerprints and unpacks the copies, so what
//! is kept, what is unpacked and the fingerprint are of the same bytes even if the user's
//! file changes meanwhile. The copy costs the image's compressed size once more on disk
//! (`copy_file_range`: shared extents where the filesystem has reflinks). Images imported
//! before lxr kept them cannot be exported.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};

use super::store::Store;
use super::unpack::Format;

/// The directory of an image that holds its original files.
pub const DIR: &str = "export";

/// The extension a file of `format` gets.
fn extension(format: Format) -> &'static str {
    match format {
        Format::Squashfs => ".squashfs",
        Format::Tar(None) => ".tar",
        Format::Tar(Some("--xz")) => ".tar.xz",
        Format::Tar(Some("--gzip")) => ".tar.gz",
        Format::Tar(Some("--bzip2")) => ".tar.bz2",
        Format::Tar(Some("--zstd")) => ".tar.zst",
        Format::Tar(Some(_)) => ".tar",
    }
}

/// The names `image export` writes, as Incus names them: `<fp>.tar.xz` for a unified image;
/// `meta-<fp>.tar.xz` and `<fp>.squashfs` (or `.tar.xz`…) for a split one.
pub fn names(fp: &str, meta: Format, rootfs: Option<Format>) -> Vec<String> {
    match rootfs {
        None => vec![format!("{fp}{}", extension(meta))],
        Some(r) => vec![
            format!("meta-{fp}{}", extension(meta)),
            format!("{fp}{}", extension(r)),
        ],
    }
}

/// Copy `from` (rewound first) to a new file `to`; the copy is rewound, open for reading. It
/// is mode 0644 (in the user's private store): `unsquashfs` reopens its stdin by path
/// (`/dev/stdin`) as the container's root, to whom the user's file is "other".
pub fn copy(from: &mut File, name: &str, to: &Path) -> Result<File> {
    std::io::Seek::rewind(from).ctx(|| format!("rewind {name}"))?;
    let mut out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)
        .ctx(|| format!("create {}", to.display()))?;
    // lxr's umask is 077; the mode is set explicitly.
    out.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .ctx(|| format!("chmod {}", to.display()))?;
    std::io::copy(from, &mut out).ctx(|| format!("copy {name} to {}", to.display()))?;
    out.flush().ctx(|| format!("write {}", to.display()))?;
    std::io::Seek::rewind(&mut out).ctx(|| format!("rewind {}", to.display()))?;
    Ok(out)
}

/// Move `from` (a file of lxr's, in the store's directory) to `to`, mode 0644 as [`copy`]
/// makes it; open for reading.
pub fn take(from: &Path, to: &Path) -> Result<File> {
    std::fs::rename(from, to).ctx(|| format!("move {} to {}", from.display(), to.display()))?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)
        .ctx(|| format!("open {}", to.display()))?;
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .ctx(|| format!("chmod {}", to.display()))?;
    Ok(f)
}

/// Write the original files of image `fp` into `dir` (new files; an existing one is not
/// overwritten). Returns the paths written.
pub fn export(store: &Store, fp: &str, files: &[String], dir: &Path) -> Result<Vec<PathBuf>> {
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "image {} was imported before lxr kept imported files: it cannot be exported \
             (import its file(s) again: `lxr image delete` it first)",
            &fp[..12.min(fp.len())]
        )));
    }
    let src = store.image(fp).join(DIR);
    let mut written = Vec::new();
    let result = (|| {
        for name in files {
            // Names lxr made itself; a hand-edited image.json must not point elsewhere.
            if name.contains('/') || name.starts_with('.') {
                return Err(Error::Usage(format!(
                    "bad file name {name:?} in image.json"
                )));
            }
            let from_path = src.join(name);
            let mut from = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&from_path)
                .ctx(|| format!("open {}", from_path.display()))?;
            let to = dir.join(name);
            let out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&to)
                .ctx(|| format!("create {}", to.display()))?;
            written.push(to.clone());
            let mut out = out;
            std::io::copy(&mut from, &mut out).ctx(|| format!("write {}", to.display()))?;
            out.sync_all().ctx(|| format!("write {}", to.display()))?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Nothing half-written stays.
        for p in &written {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    Ok(written)
}
