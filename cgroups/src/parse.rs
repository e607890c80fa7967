//! Strict parsers for the shapes cgroup files come in: a single number, `max`-or-number,
//! flat keyed files (`key value` per line) and nested keyed files (`key k=v k=v`).
//! Anything else is an error, never a panic and never a silent zero.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};

/// Read a whole file into a string, mapping the error to [`Error::Io`].
///
/// Reads into a buffer large enough for any cgroup or procfs file we parse in one `read()`:
/// `std::fs::read_to_string` first `statx`es the file and, seeing size 0 (procfs, cgroupfs),
/// probes with small reads, several syscalls per file on the hot path of every FUSE read.
pub fn read_to_string(path: &Path) -> Result<String> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    with_read_buffer(|buf| {
        // Not `read_to_end`: it also `statx`es and `lseek`s the file to guess its size.
        let mut len = 0;
        loop {
            if len == buf.len() {
                let grown = buf.len() * 2;
                buf.resize(grown, 0);
            }
            match f.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        std::str::from_utf8(&buf[..len])
            .map(str::to_owned)
            .map_err(|_| Error::parse(path, "not UTF-8"))
    })
}

/// Run `f` with this thread's read buffer (zero-filled, at least 4 KiB; it keeps the largest
/// size a file needed). A fresh zeroed 16 KiB per file read was a quarter of a meminfo
/// rendering's instructions (calloc + memset); one buffer per thread, shared by every reader
/// of procfs and cgroupfs text, keeps the daemon's memory small.
pub fn with_read_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    use std::cell::RefCell;
    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    const MIN: usize = 4096;
    BUF.with(|cell| {
        let mut own = Vec::new();
        let mut guard = cell.try_borrow_mut();
        // `f` never re-enters, but a borrowed buffer must not panic: a private one then.
        let buf: &mut Vec<u8> = match guard {
            Ok(ref mut b) => b,
            Err(_) => &mut own,
        };
        if buf.len() < MIN {
            buf.resize(MIN, 0);
        }
        f(buf)
    })
}

/// Parse a file holding one unsigned integer (surrounding whitespace allowed).
pub fn parse_u64(path: &Path, text: &str) -> Result<u64> {
    let t = text.trim();
    t.parse::<u64>()
        .map_err(|_| Error::parse(path, format!("expected an unsigned integer, got {t:?}")))
}

/// Parse a file holding one signed integer (`cpu.cfs_quota_us` uses -1).
pub fn parse_i64(path: &Path, text: &str) -> Result<i64> {
    let t = text.trim();
    t.parse::<i64>()
        .map_err(|_| Error::parse(path, format!("expected an integer, got {t:?}")))
}

/// Parse `max` (→ `None`) or an unsigned integer (→ `Some`).
pub fn parse_max_or_u64(path: &Path, text: &str) -> Result<Option<u64>> {
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    t.parse::<u64>().map(Some).map_err(|_| {
        Error::parse(
            path,
            format!("expected \"max\" or an unsigned integer, got {t:?}"),
        )
    })
}

/// Parse a flat keyed file (`memory.stat`, `cpu.stat`): one `key value` pair per line.
/// Keys match exactly (no prefix matching); duplicate keys and junk lines are errors.
pub fn parse_flat_keyed(path: &Path, text: &str) -> Result<HashMap<String, u64>> {
    parse_flat_keyed_with(path, text)
}

/// [`parse_flat_keyed`] into a map with the hasher `S` (`memory.stat`, parsed on every
/// meminfo rendering, uses [`Fnv`]: its keys are the kernel's, and SipHash was a tenth of a
/// rendering). Lines are split on bytes and the map sized up front (`str::lines` and the
/// rehashing of a growing map were another quarter).
pub fn parse_flat_keyed_with<S: std::hash::BuildHasher + Default>(
    path: &Path,
    text: &str,
) -> Result<HashMap<String, u64, S>> {
    let lines = text.bytes().filter(|b| *b == b'\n').count() + 1;
    let mut map = HashMap::with_capacity_and_hasher(lines, S::default());
    let mut rest = text;
    let mut n = 0;
    while !rest.is_empty() {
        // As `str::lines`: split at '\n', a trailing "\r" dropped, no empty last line.
        let (line, next) = match rest.as_bytes().iter().position(|b| *b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, ""),
        };
        rest = next;
        let line = line.strip_suffix('\r').unwrap_or(line);
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split_ascii_whitespace();
        let (Some(key), Some(val), None) = (it.next(), it.next(), it.next()) else {
            return Err(Error::parse(
                path,
                format!("line {n}: expected \"key value\", got {line:?}"),
            ));
        };
        let val = val
            .parse::<u64>()
            .map_err(|_| Error::parse(path, format!("line {n}: bad value {val:?} for {key}")))?;
        if map.insert(key.to_string(), val).is_some() {
            return Err(Error::parse(path, format!("line {n}: duplicate key {key}")));
        }
    }
    Ok(map)
}

/// The FNV-1a hash: for maps keyed by the kernel's own names (not attacker-chosen), far
/// cheaper than SipHash on short keys.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A `HashMap` builder with [`Fnv`].
pub type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

/// Parse `MAJ:MIN` into a device number pair.
pub fn parse_devno(path: &Path, s: &str) -> Result<(u32, u32)> {
    let bad = || Error::parse(path, format!("bad device number {s:?}"));
    let (maj, min) = s.split_once(':').ok_or_else(bad)?;
    Ok((
        maj.parse().map_err(|_| bad())?,
        min.parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_is_exact_and_strict() {
        let p = Path::new("memory.stat");
        let m = parse_flat_keyed(p, "total_rss 1\ntotal_rss_huge 2\n").unwrap();
        assert_eq!(m["total_rss"], 1);
        assert_eq!(m["total_rss_huge"], 2);
        assert!(parse_flat_keyed(p, "a 1 2\n").is_err());
        assert!(parse_flat_keyed(p, "a x\n").is_err());
        assert!(parse_flat_keyed(p, "a -1\n").is_err());
        assert!(parse_flat_keyed(p, "a 1\na 2\n").is_err());
        assert!(parse_flat_keyed(p, "lonely\n").is_err());
        let m = parse_flat_keyed_with::<FnvBuild>(p, "a 1\r\n\n  \nb 2").unwrap();
        assert_eq!((m.get("a"), m.get("b"), m.len()), (Some(&1), Some(&2), 2));
        let e = parse_flat_keyed(p, "a 1\n\nb x\n").unwrap_err().to_string();
        assert!(e.contains("line 3: bad value \"x\" for b"), "{e}");
    }

    #[test]
    fn numbers() {
        let p = Path::new("f");
        assert_eq!(parse_u64(p, "42\n").unwrap(), 42);
        assert!(parse_u64(p, "").is_err());
        assert!(parse_u64(p, "-1").is_err());
        assert_eq!(parse_i64(p, "-1\n").unwrap(), -1);
        assert_eq!(parse_max_or_u64(p, "max\n").unwrap(), None);
        assert_eq!(parse_max_or_u64(p, "5").unwrap(), Some(5));
        assert!(parse_max_or_u64(p, "maximum").is_err());
        assert_eq!(parse_devno(p, "8:16").unwrap(), (8, 16));
        assert!(parse_devno(p, "8-16").is_err());
    }
}
