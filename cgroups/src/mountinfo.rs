//! `/proc/<pid>/mountinfo`, parsed once for everyone: which filesystems are mounted where
//! (cgroup hierarchies for [`crate::Layout`], an lxcfs mount for lxr). Strict: a line without
//! its fields is an error, not a skipped mount.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// What of its filesystem the mount shows (field 4; `/` for the whole).
    pub root: String,
    /// Where it is mounted (field 5).
    pub mount_point: PathBuf,
    /// Per-mount options (field 6).
    pub mount_options: String,
    /// Filesystem type (after the ` - `), e.g. `cgroup2`, `fuse.lxcfs`.
    pub fstype: String,
    /// Source (after the type).
    pub source: String,
    /// Superblock options (after the source), e.g. a v1 hierarchy's controllers.
    pub super_options: String,
}

/// Parse mountinfo text.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Mount>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            return Err(Error::parse(
                path,
                format!("line {}: no \" - \" separator", n + 1),
            ));
        };
        if sep < 6 || fields.len() < sep + 3 {
            return Err(Error::parse(
                path,
                format!("line {}: too few fields", n + 1),
            ));
        }
        out.push(Mount {
            root: unescape(fields[3]),
            mount_point: PathBuf::from(unescape(fields[4])),
            mount_options: fields[5].to_string(),
            fstype: fields[sep + 1].to_string(),
            source: unescape(fields[sep + 2]),
            super_options: fields.get(sep + 3).copied().unwrap_or_default().to_string(),
        });
    }
    Ok(out)
}

/// Read and parse `<proc_root>/self/mountinfo` (the reader's own mount namespace).
pub fn read(proc_root: &Path) -> Result<Vec<Mount>> {
    let path = proc_root.join("self/mountinfo");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    parse(&path, &text)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_escapes() {
        let t = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                 90 31 0:77 / /var/lib/lx\\040cfs rw,nosuid shared:5 master:1 - fuse.lxcfs lxcfs rw,user_id=0\n";
        let m = parse(Path::new("mi"), t).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].mount_point, Path::new("/var/lib/lx cfs"));
        assert_eq!(m[1].fstype, "fuse.lxcfs");
        assert_eq!(m[1].source, "lxcfs");
        assert_eq!(m[1].super_options, "rw,user_id=0");
        assert_eq!(m[0].mount_options, "rw,relatime");
    }

    #[test]
    fn a_short_line_is_an_error() {
        assert!(parse(Path::new("mi"), "garbage line\n").is_err());
        assert!(parse(Path::new("mi"), "1 2 3 - cgroup\n").is_err());
    }
}
