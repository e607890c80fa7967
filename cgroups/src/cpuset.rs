//! cpusets: the list format (`0-3,8`) and the CPUs a cgroup may run on, with lxcfs's
//! fallbacks (own `cpuset.cpus`, then the effective set, then the nearest non-empty ancestor).

use std::collections::BTreeSet;
use std::path::Path;

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::layout::Version;

/// A set of CPU numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSet(pub BTreeSet<u32>);

impl CpuSet {
    /// Parse the kernel list format (`0-3,8,10-11`; empty is the empty set).
    pub fn parse(path: &Path, text: &str) -> Result<CpuSet> {
        let mut set = BTreeSet::new();
        let t = text.trim();
        if t.is_empty() {
            return Ok(CpuSet(set));
        }
        for part in t.split(',') {
            let bad = || Error::parse(path, format!("bad cpu list element {part:?}"));
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (
                    a.parse::<u32>().map_err(|_| bad())?,
                    b.parse::<u32>().map_err(|_| bad())?,
                ),
                None => {
                    let v = part.parse::<u32>().map_err(|_| bad())?;
                    (v, v)
                }
            };
            if a > b || b - a > 65536 {
                return Err(bad());
            }
            set.extend(a..=b);
        }
        Ok(CpuSet(set))
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }

    /// Number of CPUs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first `n` CPUs.
    pub fn first(&self, n: usize) -> CpuSet {
        CpuSet(self.0.iter().copied().take(n).collect())
    }

    /// The kernel list format, ranges collapsed (`0-3,8`).
    pub fn to_list(&self) -> String {
        let mut out = String::new();
        let mut it = self.0.iter().copied().peekable();
        while let Some(start) = it.next() {
            let mut end = start;
            while it.peek() == Some(&(end + 1)) {
                end += 1;
                it.next();
            }
            if !out.is_empty() {
                out.push(',');
            }
            if end == start {
                out.push_str(&start.to_string());
            } else {
                out.push_str(&format!("{start}-{end}"));
            }
        }
        out
    }
}

/// The CPUs a cgroup may use.
pub fn effective(cg: &Cgroup) -> Result<CpuSet> {
    let (own, eff) = match cg.version {
        Version::V1 => ("cpuset.cpus", "cpuset.effective_cpus"),
        Version::V2 => ("cpuset.cpus", "cpuset.cpus.effective"),
    };
    for c in cg.self_and_ancestors() {
        for name in [own, eff] {
            if let Some(t) = c.read_opt(name)? {
                let set = CpuSet::parse(&c.file(name), &t)?;
                if !set.is_empty() {
                    return Ok(set);
                }
            }
        }
    }
    Err(Error::parse(
        cg.file(own),
        "no cpuset found in the cgroup or any ancestor",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;

    #[test]
    fn list_format_round_trip() {
        let p = Path::new("c");
        let s = CpuSet::parse(p, "0-3,8,10-11\n").unwrap();
        assert_eq!(s.len(), 7);
        assert_eq!(s.to_list(), "0-3,8,10-11");
        assert_eq!(s.first(2).to_list(), "0-1");
        assert!(CpuSet::parse(p, "\n").unwrap().is_empty());
        for bad in ["a", "3-1", "1,,2", "-1", "0-99999999"] {
            assert!(CpuSet::parse(p, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn falls_back_to_effective_then_ancestors() {
        let fx = Fixture::new();
        let root = fx.v2_cgroup("");
        fx.write(&root, "cpuset.cpus.effective", "0-3\n");
        let a = fx.v2_cgroup("a");
        fx.write(&a, "cpuset.cpus", "\n");
        fx.write(&a, "cpuset.cpus.effective", "1-2\n");
        let b = fx.v2_cgroup("a/b");
        assert_eq!(effective(&a).unwrap().to_list(), "1-2");
        assert_eq!(effective(&b).unwrap().to_list(), "1-2");
        fx.write(&b, "cpuset.cpus", "2\n");
        assert_eq!(effective(&b).unwrap().to_list(), "2");
    }
}
