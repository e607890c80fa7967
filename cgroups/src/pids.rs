//! The pids controller: how many tasks a cgroup has and may have.

use crate::cgroup::Cgroup;
use crate::error::Result;

/// `pids.current` and `pids.max` (`None` = `max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pids {
    /// Tasks in the cgroup and its descendants.
    pub current: u64,
    /// Limit, if any.
    pub max: Option<u64>,
}

/// Read the pids controller files of a cgroup (same names on v1 and v2).
pub fn read(cg: &Cgroup) -> Result<Pids> {
    let current = cg.read_u64("pids.current")?;
    let max = cg.read_max_opt("pids.max")?.flatten();
    Ok(Pids { current, max })
}

/// The task ids (threads) listed in a cgroup's own `tasks` (v1) or `cgroup.threads` (v2).
pub fn tasks(cg: &Cgroup) -> Result<Vec<u32>> {
    let name = match cg.version {
        crate::Version::V1 => "tasks",
        crate::Version::V2 => "cgroup.threads",
    };
    let path = cg.file(name);
    let text = crate::parse::read_to_string(&path)?;
    text.split_ascii_whitespace()
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| crate::Error::parse(&path, format!("bad task id {t:?}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;

    #[test]
    fn reads_current_and_max() {
        let fx = Fixture::new();
        let cg = fx.v2_cgroup("c");
        fx.write(&cg, "pids.current", "3\n");
        fx.write(&cg, "pids.max", "max\n");
        assert_eq!(
            read(&cg).unwrap(),
            Pids {
                current: 3,
                max: None
            }
        );
        fx.write(&cg, "pids.max", "100\n");
        assert_eq!(read(&cg).unwrap().max, Some(100));
        fx.write(&cg, "cgroup.threads", "1\n2\nx\n");
        assert!(tasks(&cg).is_err());
        fx.write(&cg, "cgroup.threads", "1\n2\n");
        assert_eq!(tasks(&cg).unwrap(), vec![1, 2]);
    }
}
