//! LXD's limit keys turned into cgroup files, for v1 and v2:
//!
//! | key | v1 | v2 |
//! |---|---|---|
//! | `limits.memory` (`256MiB`, `1GB`, bytes) | `memory.limit_in_bytes` | `memory.max` |
//! | `limits.cpu` (a count `2`, or CPUs `0-1`, `0,2`) | `cpuset.cpus` | `cpuset.cpus` |
//! | `limits.cpu.allowance` (`25ms/100ms`, or `50%` of one CPU) | `cpu.cfs_quota_us` + `cpu.cfs_period_us` | `cpu.max` |
//! | `limits.processes` | `pids.max` | `pids.max` |
//!
//! (LXD treats a percentage allowance as a soft share; here it is a hard quota, which is what a
//! container's view through lxcfs reflects.)

use crate::error::{Error, Result};

/// One cgroup file to write: (controller, v1 file, v2 file, value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The controller the file belongs to.
    pub controller: &'static str,
    /// File name on v1.
    pub v1: &'static str,
    /// File name on v2.
    pub v2: &'static str,
    /// Value on v1.
    pub v1_value: String,
    /// Value on v2.
    pub v2_value: String,
}

/// Keys this runtime understands.
pub const KEYS: &[&str] = &[
    "limits.memory",
    "limits.cpu",
    "limits.cpu.allowance",
    "limits.processes",
];

/// A size in the one grammar of [`cgroups::size`] (`256MiB`, `2G`, `1GB`, `1048576`) → bytes.
pub fn parse_bytes(s: &str) -> Result<u64> {
    cgroups::size::parse(s).map_err(|e| Error::Usage(e.to_string()))
}

/// The CPUs for `limits.cpu` given the CPUs available (a cpuset list like `0-3`).
pub fn cpus_for(value: &str, available: &str) -> Result<String> {
    if available.trim().is_empty() {
        return Err(Error::Host(
            "limits.cpu needs the cpuset controller, and the container's cgroups have none \
             (v1: delegate the cpuset hierarchy; cgroup2: cpuset enabled down to the \
             delegation point)"
                .into(),
        ));
    }
    let avail = cgroups::cpuset::CpuSet::parse(std::path::Path::new("cpuset.cpus"), available)
        .map_err(|e| Error::Setup(e.to_string()))?;
    if let Ok(n) = value.trim().parse::<usize>() {
        if n == 0 {
            return Err(Error::Usage("limits.cpu must be at least 1".into()));
        }
        let cpus: Vec<u32> = avail.0.iter().copied().take(n).collect();
        if cpus.len() < n {
            return Err(Error::Usage(format!(
                "limits.cpu={n} but only {} CPUs are available ({available})",
                cpus.len()
            )));
        }
        return Ok(cpus
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","));
    }
    let want = cgroups::cpuset::CpuSet::parse(std::path::Path::new("limits.cpu"), value).map_err(
        |_| {
            Error::Usage(format!(
                "limits.cpu={value:?}: a count or a CPU list like 0-1"
            ))
        },
    )?;
    if let Some(bad) = want.0.iter().find(|c| !avail.contains(**c)) {
        return Err(Error::Usage(format!(
            "limits.cpu: CPU {bad} is not available ({available})"
        )));
    }
    Ok(value.trim().to_string())
}

/// The writes for one key (limits.cpu's needs the available CPUs, passed in).
pub fn writes(key: &str, value: &str, available_cpus: &str) -> Result<Vec<Write>> {
    let w = |controller, v1, v2, v1v: String, v2v: String| Write {
        controller,
        v1,
        v2,
        v1_value: v1v,
        v2_value: v2v,
    };
    Ok(match key {
        "limits.memory" => {
            let b = parse_bytes(value)?.to_string();
            vec![w(
                "memory",
                "memory.limit_in_bytes",
                "memory.max",
                b.clone(),
                b,
            )]
        }
        "limits.processes" => {
            let n: u64 = value
                .trim()
                .parse()
                .map_err(|_| Error::Usage(format!("limits.processes={value:?}: a number")))?;
            vec![w(
                "pids",
                "pids.max",
                "pids.max",
                n.to_string(),
                n.to_string(),
            )]
        }
        "limits.cpu" => {
            let c = cpus_for(value, available_cpus)?;
            vec![w("cpuset", "cpuset.cpus", "cpuset.cpus", c.clone(), c)]
        }
        "limits.cpu.allowance" => {
            let (quota, period) = if let Some(p) = value.trim().strip_suffix('%') {
                let pct: u64 = p
                    .trim()
                    .parse()
                    .map_err(|_| Error::Usage(format!("limits.cpu.allowance={value:?}")))?;
                (pct * 1000, 100_000)
            } else {
                let (q, p) = value.split_once('/').ok_or_else(|| {
                    Error::Usage(format!(
                        "limits.cpu.allowance={value:?}: use 25ms/100ms or 50%"
                    ))
                })?;
                let ms = |s: &str| -> Result<u64> {
                    s.trim()
                        .strip_suffix("ms")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .map(|n| n * 1000)
                        .ok_or_else(|| {
                            Error::Usage(format!("limits.cpu.allowance: {s:?} is not N ms"))
                        })
                };
                (ms(q)?, ms(p)?)
            };
            if quota == 0 || period == 0 {
                return Err(Error::Usage("limits.cpu.allowance must be positive".into()));
            }
            vec![
                w(
                    "cpu",
                    "cpu.cfs_period_us",
                    "cpu.max",
                    period.to_string(),
                    format!("{quota} {period}"),
                ),
                w(
                    "cpu",
                    "cpu.cfs_quota_us",
                    "cpu.max",
                    quota.to_string(),
                    format!("{quota} {period}"),
                ),
            ]
        }
        k => {
            return Err(Error::Usage(format!(
                "unknown key {k:?} (known: {})",
                KEYS.join(", ")
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_bytes("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("1XB").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(cpus_for("1", "0-3").unwrap(), "0");
        assert_eq!(cpus_for("2", "2-5").unwrap(), "2,3");
        assert!(cpus_for("5", "0-3").is_err());
        assert_eq!(cpus_for("1-2", "0-3").unwrap(), "1-2");
        assert!(cpus_for("7", "0-1").is_err());
        assert!(cpus_for("0", "0-1").is_err());
        // No cpuset controller at all (cgroup2 without it enabled): said so, not "0 CPUs".
        let e = cpus_for("1", "").unwrap_err().to_string();
        assert!(e.contains("cpuset controller"), "{e}");
    }

    #[test]
    fn allowance() {
        let w = writes("limits.cpu.allowance", "25ms/100ms", "0-1").unwrap();
        assert_eq!(w[1].v1_value, "25000");
        assert_eq!(w[0].v2_value, "25000 100000");
        let w = writes("limits.cpu.allowance", "50%", "0-1").unwrap();
        assert_eq!(w[1].v1_value, "50000");
        assert!(writes("limits.cpu.allowance", "fast", "0-1").is_err());
        assert!(writes("limits.nonsense", "1", "0-1").is_err());
    }
}
