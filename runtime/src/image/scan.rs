//! Before an image file is unpacked, its listing (`tar --list --verbose`, `unsquashfs -lln`:
//! the same program and the same bytes as the extraction) is read entry by entry and the image
//! is refused if anything in it could hurt the user:
//!
//! * an owner outside the container's ids 0–65535 (unpacked, it would belong to an id the
//!   container does not map — with tar keeping a setuid bit even when `chown` fails);
//! * a name that is absolute or climbs out with `..`;
//! * a `metadata.yaml` over 1 MiB (it is read into memory);
//! * more data or more files than the configured maximum, or than the disk holds (less a
//!   reserve): refused before the disk fills, not after;
//! * a listing line lxr cannot read (a name with a newline in a squashfs listing).
//!
//! Device nodes cannot be made in a user namespace, and lxr mounts its own `/dev`: they are
//! collected here and skipped by the extraction.

use crate::error::{Error, Result};
use crate::text;

/// Largest `metadata.yaml` lxr reads.
pub const METADATA_MAX: u64 = 1 << 20;

/// Most device nodes an image may carry (each is skipped by name on tar's command line).
const DEVICES_MAX: usize = 1000;

/// What is being listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A unified tarball: `metadata.yaml`, `templates/`, `rootfs/` at its top.
    Unified,
    /// The metadata tarball of a split image: `metadata.yaml`, `templates/`.
    Metadata,
    /// The rootfs of a split image (tarball or squashfs).
    Rootfs,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `-` file, `d` directory, `l` symlink, `h` hard link, `c`/`b` device, `p` FIFO, `s` socket.
    pub kind: char,
    /// Set-user-id or set-group-id.
    pub setid: bool,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Bytes (0 for devices).
    pub size: u64,
    /// The name as the listing shows it (escaped by tar; a squashfs listing's
    /// `squashfs-root/` prefix removed).
    pub name: String,
    /// A hard link's target (a name in the archive).
    pub link: Option<String>,
}

/// Parse one line of `tar -tv --numeric-owner --quoting-style=escape` or `unsquashfs -lln`:
/// `MODE UID/GID SIZE DATE TIME NAME[ -> TARGET| link to TARGET]`.
pub fn parse_line(line: &str, squashfs: bool) -> std::result::Result<Entry, String> {
    let bad = || format!("unreadable listing line {:?}", text::line(line));
    let mut rest = line;
    let mut field = || -> Option<&str> {
        let t = rest.trim_start_matches(' ');
        let end = t.find(' ')?;
        let (f, r) = t.split_at(end);
        rest = r;
        Some(f)
    };
    let mode = field().ok_or_else(bad)?;
    let owner = field().ok_or_else(bad)?;
    let mut size = field().ok_or_else(bad)?.to_string();
    let kind = mode.chars().next().ok_or_else(bad)?;
    if mode.chars().count() != 10 || !"-dlhcbps".contains(kind) {
        return Err(bad());
    }
    if matches!(kind, 'c' | 'b') && size.ends_with(',') {
        // unsquashfs pads the minor number: `8,  0`.
        size.push_str(field().ok_or_else(bad)?);
    }
    let _date = field().ok_or_else(bad)?;
    let _time = field().ok_or_else(bad)?;
    let name = rest.strip_prefix(' ').ok_or_else(bad)?;
    let (uid, gid) = owner.split_once('/').ok_or_else(bad)?;
    let (uid, gid) = (
        uid.parse::<u32>().map_err(|_| bad())?,
        gid.parse::<u32>().map_err(|_| bad())?,
    );
    let size = if matches!(kind, 'c' | 'b') {
        0
    } else {
        size.parse::<u64>().map_err(|_| bad())?
    };
    let (name, link) = match kind {
        'l' => (name.split_once(" -> ").map_or(name, |(n, _)| n), None),
        'h' => {
            let (n, t) = name.split_once(" link to ").ok_or_else(bad)?;
            (n, Some(t.to_string()))
        }
        _ => (name, None),
    };
    let name = if squashfs {
        match name {
            "squashfs-root" => ".",
            n => n.strip_prefix("squashfs-root/").ok_or_else(bad)?,
        }
    } else {
        name
    };
    let m = mode.as_bytes();
    Ok(Entry {
        kind,
        setid: matches!(m[3], b's' | b'S') || matches!(m[6], b's' | b'S'),
        uid,
        gid,
        size,
        name: name.trim_end_matches('/').to_string(),
        link,
    })
}

/// The name's components, `./` dropped; `None` for an absolute name or one with `..`.
fn components(name: &str) -> Option<Vec<&str>> {
    if name.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    (!parts.contains(&"..")).then_some(parts)
}

/// The totals of an image's listings and what the extraction must skip.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Bytes the unpacked image takes, counted in 4 KiB blocks (a directory is one).
    pub bytes: u64,
    /// Entries (inodes).
    pub entries: u64,
    /// Device nodes, by name as the listing shows them.
    pub devices: Vec<String>,
    /// Size of `metadata.yaml`, if listed.
    pub metadata: Option<u64>,
}

impl Summary {
    /// Take one entry in, refusing what must not be unpacked.
    pub fn add(&mut self, e: &Entry, part: Part) -> Result<()> {
        let refuse = |why: String| Err(Error::Usage(format!("image refused: {why}")));
        let Some(parts) = components(&e.name) else {
            return refuse(format!(
                "the entry {:?} points outside the image (absolute or with ..)",
                text::line(&e.name)
            ));
        };
        if let Some(target) = &e.link {
            if components(target).is_none() {
                return refuse(format!(
                    "the hard link {:?} points outside the image ({:?})",
                    text::line(&e.name),
                    text::line(target)
                ));
            }
        }
        if e.uid >= crate::idmap::CONTAINER_IDS || e.gid >= crate::idmap::CONTAINER_IDS {
            return refuse(format!(
                "{:?} is owned by {}:{}, outside the container's ids 0-{}{}",
                text::line(&e.name),
                e.uid,
                e.gid,
                crate::idmap::CONTAINER_IDS - 1,
                if e.setid { " (and set-id)" } else { "" }
            ));
        }
        if part != Part::Rootfs && parts == ["metadata.yaml"] {
            if e.kind != '-' {
                return refuse("metadata.yaml is not a regular file".into());
            }
            if e.size > METADATA_MAX {
                return refuse(format!(
                    "metadata.yaml is {} bytes, more than the {METADATA_MAX} allowed",
                    e.size
                ));
            }
            self.metadata = Some(e.size);
        }
        if matches!(e.kind, 'c' | 'b') {
            if self.devices.len() >= DEVICES_MAX {
                return refuse(format!("more than {DEVICES_MAX} device nodes"));
            }
            self.devices.push(e.name.clone());
            return Ok(());
        }
        self.entries += 1;
        let blocks = match e.kind {
            '-' => e.size.div_ceil(4096).max(1),
            'd' => 1,
            _ => 0,
        };
        self.bytes = self.bytes.saturating_add(blocks.saturating_mul(4096));
        Ok(())
    }

    /// Check the totals against the maximum and the filesystem the image goes to.
    pub fn check(&self, space: &Space) -> Result<()> {
        let mib = |b: u64| b as f64 / 1048576.0;
        if self.bytes > space.max_bytes {
            return Err(Error::Usage(format!(
                "image refused: it unpacks to {:.1} MiB, more than the maximum of {:.1} MiB \
                 (lxr image import --max-size)",
                mib(self.bytes),
                mib(space.max_bytes)
            )));
        }
        if self.bytes.saturating_add(space.reserve) > space.free_bytes {
            return Err(Error::Usage(format!(
                "image refused: it unpacks to {:.1} MiB, and the disk has {:.1} MiB free \
                 (keeping {:.1} MiB in reserve)",
                mib(self.bytes),
                mib(space.free_bytes),
                mib(space.reserve)
            )));
        }
        if let Some(free) = space.free_inodes {
            if self.entries.saturating_add(space.reserve_inodes) > free {
                return Err(Error::Usage(format!(
                    "image refused: it has {} files, and the disk has room for {free} more",
                    self.entries
                )));
            }
        }
        Ok(())
    }
}

/// Room for an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// The configured maximum.
    pub max_bytes: u64,
    /// Free bytes on the image store's filesystem (for unprivileged users).
    pub free_bytes: u64,
    /// Bytes that must stay free.
    pub reserve: u64,
    /// Free inodes, where the filesystem counts them.
    pub free_inodes: Option<u64>,
    /// Inodes that must stay free.
    pub reserve_inodes: u64,
}

impl Space {
    /// The filesystem of `dir` (an open directory), with `max_bytes` as the maximum. The
    /// reserve is 5 % of the filesystem, at most 256 MiB.
    pub fn of(dir: &impl std::os::fd::AsFd, max_bytes: u64) -> Result<Space> {
        let st = nix::sys::statvfs::fstatvfs(dir).map_err(|e| Error::Os {
            what: "statvfs of the image store".into(),
            source: e.into(),
        })?;
        let frsize = st.fragment_size();
        let total = (st.blocks() as u64).saturating_mul(frsize);
        let files = st.files() as u64;
        Ok(Space {
            max_bytes,
            free_bytes: (st.blocks_available() as u64).saturating_mul(frsize),
            reserve: (total / 20).min(256 << 20),
            free_inodes: (files > 0).then_some(st.files_available() as u64),
            reserve_inodes: files / 100,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_listing_lines_parse() {
        let e = parse_line(
            "-rwsr-sr-x 65536/0           3 2026-12-01 07:43 rootfs/bin/x",
            false,
        )
        .unwrap();
        assert_eq!(
            e,
            Entry {
                kind: '-',
                setid: true,
                uid: 65536,
                gid: 0,
                size: 3,
                name: "rootfs/bin/x".into(),
                link: None,
            }
        );
        let e = parse_line(
            "brw-r--r-- 0/0             8,0 2026-12-01 07:43 rootfs/sda",
            false,
        )
        .unwrap();
        assert_eq!((e.kind, e.size), ('b', 0));
        let e = parse_line(
            "lrwxrwxrwx 0/0               0 2026-12-01 07:49 rootfs/l -> x -> sp ace",
            false,
        )
        .unwrap();
        assert_eq!(e.name, "rootfs/l");
        let e = parse_line(
            "hrw-r--r-- 0/0  0 2026-12-01 07:49:46 rootfs/hard link to rootfs/sp ace",
            false,
        )
        .unwrap();
        assert_eq!(e.name, "rootfs/hard");
        assert_eq!(e.link.as_deref(), Some("rootfs/sp ace"));
        assert_eq!(
            parse_line("drwxr-xr-x 0/0 0 2026-12-01 07:43 rootfs/", false)
                .unwrap()
                .name,
            "rootfs"
        );
        for bad in ["x", "", "garbage 0/0 1 d t n", "-rw-r--r-- a/b 1 d t n"] {
            assert!(parse_line(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn squashfs_listing_lines_parse() {
        let e = parse_line(
            "brw-r--r-- 0/0                   8,  0 2026-12-01 07:43 squashfs-root/sda",
            true,
        )
        .unwrap();
        assert_eq!((e.kind, e.name.as_str()), ('b', "sda"));
        let e = parse_line(
            "drwxr-xr-x 0/0                      57 2026-12-01 07:43 squashfs-root",
            true,
        )
        .unwrap();
        assert_eq!(e.name, ".");
        // The second half of a name with a newline.
        assert!(parse_line("x", true).is_err());
        assert!(parse_line("-rw-r--r-- 0/0 1 d t elsewhere/x", true).is_err());
    }

    fn entry(kind: char, uid: u32, size: u64, name: &str) -> Entry {
        Entry {
            kind,
            setid: false,
            uid,
            gid: 0,
            size,
            name: name.into(),
            link: None,
        }
    }

    #[test]
    fn what_must_not_be_unpacked_is_refused() {
        let mut s = Summary::default();
        for bad in [
            entry('-', 65536, 1, "rootfs/x"),
            entry('-', 0, 1, "../x"),
            entry('-', 0, 1, "rootfs/../../x"),
            entry('-', 0, 1, "/etc/passwd"),
            entry('-', 0, METADATA_MAX + 1, "metadata.yaml"),
            entry('l', 0, 0, "./metadata.yaml"),
            Entry {
                link: Some("../../etc/passwd".into()),
                ..entry('h', 0, 0, "rootfs/h")
            },
        ] {
            assert!(s.add(&bad, Part::Unified).is_err(), "{bad:?}");
        }
        s.add(&entry('-', 0, 10, "./metadata.yaml"), Part::Unified)
            .unwrap();
        s.add(&entry('c', 0, 0, "rootfs/dev/null"), Part::Unified)
            .unwrap();
        s.add(&entry('-', 65535, 5000, "rootfs/y"), Part::Unified)
            .unwrap();
        s.add(&entry('d', 0, 0, "rootfs"), Part::Unified).unwrap();
        assert_eq!(s.metadata, Some(10));
        assert_eq!(s.devices, vec!["rootfs/dev/null".to_string()]);
        assert_eq!((s.entries, s.bytes), (3, 4096 * 4));
    }

    #[test]
    fn totals_are_checked_against_the_maximum_and_the_disk() {
        let s = Summary {
            bytes: 100 << 20,
            entries: 1000,
            ..Default::default()
        };
        let room = Space {
            max_bytes: 1 << 30,
            free_bytes: 1 << 30,
            reserve: 64 << 20,
            free_inodes: Some(100_000),
            reserve_inodes: 10,
        };
        assert!(s.check(&room).is_ok());
        assert!(s
            .check(&Space {
                max_bytes: 50 << 20,
                ..room
            })
            .is_err());
        assert!(s
            .check(&Space {
                free_bytes: 150 << 20,
                ..room
            })
            .is_err());
        assert!(s
            .check(&Space {
                free_inodes: Some(900),
                ..room
            })
            .is_err());
    }
}
