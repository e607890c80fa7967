//! CPU bandwidth (CFS quota): v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`, v2 `cpu.max`.

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::layout::Version;
use crate::parse;

/// A bandwidth limit: `quota` µs of CPU time per `period` µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Allowed runtime per period, µs.
    pub quota_us: u64,
    /// Period length, µs.
    pub period_us: u64,
}

impl Quota {
    /// The limit as a number of CPUs (0.5 for 50 ms per 100 ms).
    pub fn cpus(&self) -> f64 {
        if self.period_us == 0 {
            return f64::INFINITY;
        }
        self.quota_us as f64 / self.period_us as f64
    }
}

/// The cgroup's own quota; `None` if unlimited.
pub fn quota(cg: &Cgroup) -> Result<Option<Quota>> {
    match cg.version {
        Version::V1 => {
            let qp = cg.file("cpu.cfs_quota_us");
            let q = parse::parse_i64(&qp, &parse::read_to_string(&qp)?)?;
            if q < 0 {
                return Ok(None);
            }
            let period = cg.read_u64("cpu.cfs_period_us")?;
            Ok(Some(Quota {
                quota_us: q as u64,
                period_us: period,
            }))
        }
        Version::V2 => {
            let Some(text) = cg.read_opt("cpu.max")? else {
                return Ok(None);
            };
            parse_cpu_max(&cg.file("cpu.max"), &text)
        }
    }
}

/// Parse v2 `cpu.max`: `max 100000` or `50000 100000`.
pub fn parse_cpu_max(path: &std::path::Path, text: &str) -> Result<Option<Quota>> {
    let mut it = text.split_ascii_whitespace();
    let (Some(q), Some(p), None) = (it.next(), it.next(), it.next()) else {
        return Err(Error::parse(
            path,
            format!("expected \"<quota|max> <period>\", got {:?}", text.trim()),
        ));
    };
    let period_us = p
        .parse::<u64>()
        .map_err(|_| Error::parse(path, format!("bad period {p:?}")))?;
    if q == "max" {
        return Ok(None);
    }
    let quota_us = q
        .parse::<u64>()
        .map_err(|_| Error::parse(path, format!("bad quota {q:?}")))?;
    Ok(Some(Quota {
        quota_us,
        period_us,
    }))
}

/// The tightest quota over the cgroup and its ancestors, in CPUs (`None` = unlimited).
pub fn effective_cpus(cg: &Cgroup) -> Result<Option<f64>> {
    let mut min: Option<f64> = None;
    for c in cg.self_and_ancestors() {
        match quota(&c) {
            Ok(Some(q)) => min = Some(min.map_or(q.cpus(), |m: f64| m.min(q.cpus()))),
            Ok(None) => {}
            // The root of a v2 hierarchy has no cpu.max; v1 roots do have the files.
            Err(e) if e.is_not_found() && c.is_root() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;

    #[test]
    fn v1_quota() {
        let fx = Fixture::new();
        let root = fx.v1_cgroup("cpu", "");
        fx.write(&root, "cpu.cfs_quota_us", "-1\n");
        fx.write(&root, "cpu.cfs_period_us", "100000\n");
        let cg = fx.v1_cgroup("cpu", "c1");
        fx.write(&cg, "cpu.cfs_quota_us", "50000\n");
        fx.write(&cg, "cpu.cfs_period_us", "100000\n");
        assert_eq!(quota(&root).unwrap(), None);
        assert_eq!(effective_cpus(&cg).unwrap(), Some(0.5));
        fx.write(&cg, "cpu.cfs_quota_us", "fifty\n");
        assert!(quota(&cg).is_err());
    }

    #[test]
    fn v2_min_over_ancestors() {
        let fx = Fixture::new();
        let a = fx.v2_cgroup("a");
        let b = fx.v2_cgroup("a/b");
        fx.write(&a, "cpu.max", "150000 100000\n");
        fx.write(&b, "cpu.max", "max 100000\n");
        assert_eq!(effective_cpus(&b).unwrap(), Some(1.5));
        fx.write(&b, "cpu.max", "50000 100000\n");
        assert_eq!(effective_cpus(&b).unwrap(), Some(0.5));
        fx.write(&b, "cpu.max", "50000\n");
        assert!(effective_cpus(&b).is_err());
    }
}
