//! Block I/O done by a cgroup, per device: v1 `blkio.throttle.io_serviced_recursive` +
//! `blkio.throttle.io_service_bytes_recursive` (kept by the kernel for every cgroup, limits or
//! not — the CFQ-only `blkio.io_*` files lxcfs reads are gone since Linux 5.0), v2 `io.stat`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::layout::Version;
use crate::parse;

/// I/O counters of one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DevIo {
    /// Bytes read.
    pub rbytes: u64,
    /// Bytes written.
    pub wbytes: u64,
    /// Read requests.
    pub rios: u64,
    /// Write requests.
    pub wios: u64,
    /// Bytes discarded.
    pub dbytes: u64,
    /// Discard requests.
    pub dios: u64,
}

/// Per-device counters keyed by `(major, minor)`.
pub type IoStats = BTreeMap<(u32, u32), DevIo>;

/// Read the cgroup's I/O counters (including its descendants).
pub fn read(cg: &Cgroup) -> Result<IoStats> {
    match cg.version {
        Version::V1 => {
            let mut stats = IoStats::new();
            let ios = cg.file("blkio.throttle.io_serviced_recursive");
            parse_v1_rwstat(
                &ios,
                &parse::read_to_string(&ios)?,
                &mut stats,
                |d, op, v| match op {
                    "Read" => d.rios = v,
                    "Write" => d.wios = v,
                    "Discard" => d.dios = v,
                    _ => {}
                },
            )?;
            let bytes = cg.file("blkio.throttle.io_service_bytes_recursive");
            parse_v1_rwstat(
                &bytes,
                &parse::read_to_string(&bytes)?,
                &mut stats,
                |d, op, v| match op {
                    "Read" => d.rbytes = v,
                    "Write" => d.wbytes = v,
                    "Discard" => d.dbytes = v,
                    _ => {}
                },
            )?;
            Ok(stats)
        }
        Version::V2 => {
            let path = cg.file("io.stat");
            parse_io_stat(&path, &parse::read_to_string(&path)?)
        }
    }
}

/// Parse a v1 rwstat file: `MAJ:MIN Op value` lines and a final `Total value`.
fn parse_v1_rwstat(
    path: &Path,
    text: &str,
    stats: &mut IoStats,
    mut set: impl FnMut(&mut DevIo, &str, u64),
) -> Result<()> {
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        match f.as_slice() {
            [] => {}
            ["Total", v] => {
                v.parse::<u64>()
                    .map_err(|_| Error::parse(path, format!("line {}: bad total", n + 1)))?;
            }
            [dev, op, v] => {
                let dev = parse::parse_devno(path, dev)?;
                let v = v
                    .parse::<u64>()
                    .map_err(|_| Error::parse(path, format!("line {}: bad value {v:?}", n + 1)))?;
                set(stats.entry(dev).or_default(), op, v);
            }
            _ => {
                return Err(Error::parse(
                    path,
                    format!("line {}: unexpected {line:?}", n + 1),
                ))
            }
        }
    }
    Ok(())
}

/// Parse v2 `io.stat`: `MAJ:MIN rbytes=… wbytes=… rios=… wios=… dbytes=… dios=…`.
pub fn parse_io_stat(path: &Path, text: &str) -> Result<IoStats> {
    let mut stats = IoStats::new();
    for (n, line) in text.lines().enumerate() {
        let mut f = line.split_ascii_whitespace();
        let Some(dev) = f.next() else { continue };
        let dev = parse::parse_devno(path, dev)?;
        let d = stats.entry(dev).or_default();
        for kv in f {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                Error::parse(
                    path,
                    format!("line {}: expected key=value, got {kv:?}", n + 1),
                )
            })?;
            let v = v
                .parse::<u64>()
                .map_err(|_| Error::parse(path, format!("line {}: bad value in {kv:?}", n + 1)))?;
            match k {
                "rbytes" => d.rbytes = v,
                "wbytes" => d.wbytes = v,
                "rios" => d.rios = v,
                "wios" => d.wios = v,
                "dbytes" => d.dbytes = v,
                "dios" => d.dios = v,
                _ => {} // cost.*, wait/merge extensions: not needed
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;

    #[test]
    fn v1_throttle_files() {
        let fx = Fixture::new();
        let cg = fx.v1_cgroup("blkio", "c");
        fx.write(&cg, "blkio.throttle.io_serviced_recursive", "254:0 Read 10\n254:0 Write 5\n254:0 Sync 15\n254:0 Async 0\n254:0 Discard 1\n254:0 Total 16\nTotal 16\n");
        fx.write(
            &cg,
            "blkio.throttle.io_service_bytes_recursive",
            "254:0 Read 40960\n254:0 Write 8192\n254:0 Discard 4096\nTotal 53248\n",
        );
        let s = read(&cg).unwrap();
        assert_eq!(
            s[&(254, 0)],
            DevIo {
                rbytes: 40960,
                wbytes: 8192,
                rios: 10,
                wios: 5,
                dbytes: 4096,
                dios: 1
            }
        );
        fx.write(&cg, "blkio.throttle.io_serviced_recursive", "254:0 Read\n");
        assert!(read(&cg).is_err());
    }

    #[test]
    fn v2_io_stat() {
        let p = Path::new("io.stat");
        let s = parse_io_stat(
            p,
            "8:0 rbytes=1024 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
        )
        .unwrap();
        assert_eq!(s[&(8, 0)].rbytes, 1024);
        assert!(parse_io_stat(p, "8:0 rbytes\n").is_err());
        assert!(parse_io_stat(p, "sda rbytes=1\n").is_err());
    }
}
