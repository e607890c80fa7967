//! CPU time used by a cgroup: v1 `cpuacct.usage_all` (per CPU, user/system split) with
//! `cpuacct.usage_percpu` as fallback, `cpuacct.usage`; v2 `cpu.stat` (totals only).

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::layout::Version;
use crate::parse;

/// CPU time of one CPU, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTime {
    /// CPU number (physical).
    pub cpu: u32,
    /// Time in user mode, ns.
    pub user_ns: u64,
    /// Time in kernel mode, ns.
    pub system_ns: u64,
}

/// Per-CPU usage of a v1 cpuacct cgroup.
pub fn per_cpu(cg: &Cgroup) -> Result<Vec<CpuTime>> {
    if let Some(text) = cg.read_opt("cpuacct.usage_all")? {
        return parse_usage_all(&cg.file("cpuacct.usage_all"), &text);
    }
    // Older kernels: no user/system split. All of it is reported as user time (lxcfs
    // reported it as both user and system, counting every nanosecond twice).
    let path = cg.file("cpuacct.usage_percpu");
    let text = parse::read_to_string(&path)?;
    text.split_ascii_whitespace()
        .enumerate()
        .map(|(i, v)| {
            let ns = v
                .parse::<u64>()
                .map_err(|_| Error::parse(&path, format!("bad value {v:?}")))?;
            Ok(CpuTime {
                cpu: i as u32,
                user_ns: ns,
                system_ns: 0,
            })
        })
        .collect()
}

/// Parse `cpuacct.usage_all`: a `cpu user system` header, then one row per CPU.
pub fn parse_usage_all(path: &std::path::Path, text: &str) -> Result<Vec<CpuTime>> {
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h.split_ascii_whitespace().eq(["cpu", "user", "system"]) => {}
        other => return Err(Error::parse(path, format!("bad header {other:?}"))),
    }
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // Three numbers, nothing more (no Vec per row: this runs on every /proc/stat read).
        let mut f = line.split_ascii_whitespace().map(|s| s.parse::<u64>().ok());
        match (f.next(), f.next(), f.next(), f.next()) {
            (Some(Some(cpu)), Some(Some(user_ns)), Some(Some(system_ns)), None) => {
                out.push(CpuTime {
                    cpu: cpu as u32,
                    user_ns,
                    system_ns,
                })
            }
            _ => {
                return Err(Error::parse(
                    path,
                    format!("line {}: bad row {line:?}", n + 2),
                ))
            }
        }
    }
    Ok(out)
}

/// Total CPU time used, ns (v1 `cpuacct.usage`, v2 `cpu.stat usage_usec`).
pub fn total_ns(cg: &Cgroup) -> Result<u64> {
    match cg.version {
        Version::V1 => cg.read_u64("cpuacct.usage"),
        Version::V2 => Ok(stat_v2(cg)?.usage_ns()),
    }
}

/// v2 `cpu.stat` totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuStatV2 {
    /// `usage_usec`
    pub usage_usec: u64,
    /// `user_usec`
    pub user_usec: u64,
    /// `system_usec`
    pub system_usec: u64,
}

impl CpuStatV2 {
    /// Total usage in ns.
    pub fn usage_ns(&self) -> u64 {
        self.usage_usec.saturating_mul(1000)
    }
}

/// Read v2 `cpu.stat`.
pub fn stat_v2(cg: &Cgroup) -> Result<CpuStatV2> {
    let path = cg.file("cpu.stat");
    let map = parse::parse_flat_keyed(&path, &parse::read_to_string(&path)?)?;
    let get = |k: &str| {
        map.get(k)
            .copied()
            .ok_or_else(|| Error::parse(&path, format!("missing {k}")))
    };
    Ok(CpuStatV2 {
        usage_usec: get("usage_usec")?,
        user_usec: get("user_usec")?,
        system_usec: get("system_usec")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;

    #[test]
    fn usage_all_and_fallback() {
        let fx = Fixture::new();
        let cg = fx.v1_cgroup("cpuacct", "c");
        fx.write(
            &cg,
            "cpuacct.usage_all",
            "cpu user system\n0 100 200\n1 300 400\n",
        );
        let v = per_cpu(&cg).unwrap();
        assert_eq!(
            v[1],
            CpuTime {
                cpu: 1,
                user_ns: 300,
                system_ns: 400
            }
        );
        std::fs::remove_file(cg.file("cpuacct.usage_all")).unwrap();
        fx.write(&cg, "cpuacct.usage_percpu", "10 20 \n");
        let v = per_cpu(&cg).unwrap();
        assert_eq!(
            v,
            vec![
                CpuTime {
                    cpu: 0,
                    user_ns: 10,
                    system_ns: 0
                },
                CpuTime {
                    cpu: 1,
                    user_ns: 20,
                    system_ns: 0
                }
            ]
        );
    }

    #[test]
    fn malformed_usage_all() {
        let p = std::path::Path::new("u");
        assert!(parse_usage_all(p, "cpu user\n0 1\n").is_err());
        assert!(parse_usage_all(p, "cpu user system\n0 1\n").is_err());
        assert!(parse_usage_all(p, "cpu user system\n0 1 x\n").is_err());
        assert!(parse_usage_all(p, "").is_err());
    }

    #[test]
    fn v2_cpu_stat() {
        let fx = Fixture::new();
        let cg = fx.v2_cgroup("c");
        fx.write(
            &cg,
            "cpu.stat",
            "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\nnr_periods 0\n",
        );
        assert_eq!(total_ns(&cg).unwrap(), 3_000_000);
        fx.write(&cg, "cpu.stat", "usage_usec 3000\n");
        assert!(stat_v2(&cg).is_err());
    }
}
