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
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let kept = crate::kept::read(path, |f| {
        pread_whole(f, true, |b| std::str::from_utf8(b).map(str::to_owned))
    });
    if let Some(Ok(text)) = kept {
        return Ok(text);
    }
    // Read until a read returns 0 (not `read_to_end`: it also `statx`es and `lseek`s the
    // file to guess its size).
    let f = std::fs::File::open(path).map_err(io)?;
    pread_whole(&f, false, |b| std::str::from_utf8(b).map(str::to_owned))
        .map_err(io)?
        .map_err(|_| Error::parse(path, "not UTF-8"))
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

/// `g` of the whole file read from offset 0 (`pread`, so a kept procfs/cgroupfs descriptor
/// regenerates its text) into this thread's buffer. A `single`-record seq_file (every cgroup
/// file but the per-process lists, `/proc/meminfo`, `/proc/stat`, …) has ended when a read
/// returns less than asked for: one `pread` where it fits. A multi-record one (`/proc/cpuinfo`,
/// `/proc/diskstats`) may stop short at a record that does not fit the kernel's page, so it is
/// read until a read returns 0.
pub fn pread_whole<R>(
    f: &std::fs::File,
    single: bool,
    g: impl FnOnce(&[u8]) -> R,
) -> std::io::Result<R> {
    use std::os::unix::fs::FileExt;
    with_read_buffer(|buf| {
        let mut len = 0;
        loop {
            if len == buf.len() {
                let grown = buf.len() * 2;
                buf.resize(grown, 0);
            }
            let want = buf.len() - len;
            match f.read_at(&mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => {
                    len += n;
                    if single && n < want {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(g(&buf[..len]))
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
    let mut map = HashMap::new();
    flat_keyed_pairs(path, text, |n, key, val| {
        match map.insert(key.to_string(), val) {
            Some(_) => Err(duplicate(path, n, key)),
            None => Ok(()),
        }
    })?;
    Ok(map)
}

fn duplicate(path: &Path, n: usize, key: &str) -> Error {
    Error::parse(path, format!("line {n}: duplicate key {key}"))
}

/// The lines of `text` as `str::lines` gives them (a trailing `\r` dropped, no empty last
/// line), found with `memchr`: the renderers walk procfs and cgroupfs text of tens of lines on
/// every read, and a byte-at-a-time search was most of a `memory.stat` parse.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, ""),
        };
        rest = next;
        Some(line.strip_suffix('\r').unwrap_or(line))
    })
}

/// Every `key value` line of a flat keyed file, with its line number, to `f`; blank lines are
/// skipped.
pub(crate) fn flat_keyed_pairs(
    path: &Path,
    text: &str,
    mut f: impl FnMut(usize, &str, u64) -> Result<()>,
) -> Result<()> {
    for (i, line) in lines(text).enumerate() {
        let n = i + 1;
        // The kernel's own shape, `key value` with one space and a decimal value, by bytes;
        // anything else (tabs, spaces, junk) through the general path below.
        if let Some((key, val)) = key_space_number(line) {
            f(n, key, val)?;
            continue;
        }
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
        f(n, key, val)?;
    }
    Ok(())
}

/// `line` as `key value` when it is exactly a key without whitespace, one space, and a decimal
/// `u64`; `None` for any other shape (which the general path then judges).
fn key_space_number(line: &str) -> Option<(&str, u64)> {
    let b = line.as_bytes();
    let sp = memchr::memchr(b' ', b)?;
    let (key, digits) = (&b[..sp], &b[sp + 1..]);
    if key.is_empty() || digits.is_empty() || digits.len() > 19 {
        return None;
    }
    if key.iter().any(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Some((&line[..sp], v))
}

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
        let m = parse_flat_keyed(p, "a 1\r\n\n  \nb 2").unwrap();
        assert_eq!((m.get("a"), m.get("b"), m.len()), (Some(&1), Some(&2), 2));
        let big = "k 18446744073709551615\nl 99999999999999999999\n";
        assert!(parse_flat_keyed(p, big).is_err(), "u64 overflow");
        let text = "a\r\n\nb\nc";
        assert_eq!(
            lines(text).collect::<Vec<_>>(),
            text.lines().collect::<Vec<_>>()
        );
        assert_eq!(lines("x\n").count(), 1);
        let m = parse_flat_keyed(p, "k 18446744073709551615\nt\t7\n").unwrap();
        assert_eq!((m["k"], m["t"]), (u64::MAX, 7));
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
