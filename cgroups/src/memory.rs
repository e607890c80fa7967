//! Memory controller: usage, limits (minimum over ancestors), swap and `memory.stat`, with the
//! v1/v2 differences folded into one [`Memory`] snapshot.
//!
//! | value | v1 | v2 |
//! |---|---|---|
//! | usage | `memory.usage_in_bytes` | `memory.current` |
//! | limit | `hierarchical_memory_limit` in `memory.stat` (kernel's min over ancestors), else walk `memory.limit_in_bytes` | walk `memory.max` |
//! | swap limit | `hierarchical_memsw_limit` − memory limit (memsw counts RAM+swap) | walk `memory.swap.max` |
//! | swap usage | `memory.memsw.usage_in_bytes` − usage | `memory.swap.current` |

use crate::cgroup::Cgroup;
use crate::error::Result;
use crate::layout::Version;
use crate::parse;

/// v1 reports "no limit" as `PAGE_COUNTER_MAX * PAGE_SIZE` (9223372036854771712 on x86-64);
/// anything this large is treated as unlimited.
const V1_UNLIMITED: u64 = 1 << 62;

/// `memory.stat`, exact keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStat {
    version: Option<Version>,
    map: parse::FlatKeyed,
}

impl MemoryStat {
    /// Parse `memory.stat` text of the given version.
    pub fn parse(version: Version, path: &std::path::Path, text: String) -> Result<MemoryStat> {
        Ok(MemoryStat {
            version: Some(version),
            map: parse::FlatKeyed::parse(path, text)?,
        })
    }

    /// Raw value of a key, exact match.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.map.get(key)
    }

    /// A hierarchical value under its v1 (`total_…`) or v2 name; 0 if absent.
    fn pick(&self, v1: &str, v2: &str) -> u64 {
        match self.version {
            Some(Version::V1) => self.get(v1),
            Some(Version::V2) => self.get(v2),
            None => None,
        }
        .unwrap_or(0)
    }

    /// Page cache (v1 `total_cache`, v2 `file`).
    pub fn cache(&self) -> u64 {
        self.pick("total_cache", "file")
    }
    /// Active anonymous memory.
    pub fn active_anon(&self) -> u64 {
        self.pick("total_active_anon", "active_anon")
    }
    /// Inactive anonymous memory.
    pub fn inactive_anon(&self) -> u64 {
        self.pick("total_inactive_anon", "inactive_anon")
    }
    /// Active page cache.
    pub fn active_file(&self) -> u64 {
        self.pick("total_active_file", "active_file")
    }
    /// Inactive page cache.
    pub fn inactive_file(&self) -> u64 {
        self.pick("total_inactive_file", "inactive_file")
    }
    /// Unevictable memory.
    pub fn unevictable(&self) -> u64 {
        self.pick("total_unevictable", "unevictable")
    }
    /// Shared memory (tmpfs, shm).
    pub fn shmem(&self) -> u64 {
        self.pick("total_shmem", "shmem")
    }
    /// Mapped page cache (v1 `total_mapped_file`, v2 `file_mapped`).
    pub fn mapped(&self) -> u64 {
        self.pick("total_mapped_file", "file_mapped")
    }
    /// Dirty page cache.
    pub fn dirty(&self) -> u64 {
        self.pick("total_dirty", "file_dirty")
    }
    /// Page cache under writeback.
    pub fn writeback(&self) -> u64 {
        self.pick("total_writeback", "file_writeback")
    }
    /// Transparent huge pages backing anonymous memory (v1 `total_rss_huge`, v2 `anon_thp`).
    pub fn anon_huge(&self) -> u64 {
        self.pick("total_rss_huge", "anon_thp")
    }
    /// Shmem backed by huge pages (v2 only).
    pub fn shmem_huge(&self) -> u64 {
        self.pick("", "shmem_thp")
    }
    /// Reclaimable slab (v2 only; v1 has no slab split in memory.stat).
    pub fn slab_reclaimable(&self) -> u64 {
        self.pick("", "slab_reclaimable")
    }
    /// Unreclaimable slab (v2 only).
    pub fn slab_unreclaimable(&self) -> u64 {
        self.pick("", "slab_unreclaimable")
    }
    /// Kernel stack (v2 only).
    pub fn kernel_stack(&self) -> u64 {
        self.pick("", "kernel_stack")
    }
    /// Page tables (v2 only).
    pub fn page_tables(&self) -> u64 {
        self.pick("", "pagetables")
    }
    /// Swap cache.
    pub fn swap_cached(&self) -> u64 {
        self.pick("total_swapcached", "swapcached")
    }
    /// zswap pool size and the amount of memory stored in it (v2 only).
    pub fn zswap(&self) -> (u64, u64) {
        (self.pick("", "zswap"), self.pick("", "zswapped"))
    }
}

/// One consistent reading of a memory cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// Bytes charged to the cgroup (RAM only).
    pub usage: u64,
    /// The effective RAM limit: the minimum over the cgroup and its ancestors. `None` = none.
    pub limit: Option<u64>,
    /// The effective swap-only limit (v1: memsw limit minus RAM limit). `None` = none, or no
    /// swap accounting.
    pub swap_limit: Option<u64>,
    /// Swap in use by the cgroup; `None` when swap accounting is off.
    pub swap_usage: Option<u64>,
    /// `memory.swappiness` (v1 only).
    pub swappiness: Option<u64>,
    /// `memory.stat`.
    pub stat: MemoryStat,
}

/// Read a memory cgroup.
pub fn read(cg: &Cgroup) -> Result<Memory> {
    read_with(cg, true)
}

/// Read a memory cgroup; with `swap == false` the swap files are not read (swap fields are
/// `None`), which saves three file reads on hosts without swap.
pub fn read_with(cg: &Cgroup, swap: bool) -> Result<Memory> {
    match cg.version {
        Version::V1 => read_v1(cg, swap),
        Version::V2 => read_v2(cg, swap),
    }
}

fn v1_limit(v: u64) -> Option<u64> {
    (v < V1_UNLIMITED).then_some(v)
}

fn read_v1(cg: &Cgroup, swap: bool) -> Result<Memory> {
    let stat_path = cg.file("memory.stat");
    let stat = MemoryStat::parse(Version::V1, &stat_path, parse::read_to_string(&stat_path)?)?;
    let usage = cg.read_u64("memory.usage_in_bytes")?;
    let limit = match stat.get("hierarchical_memory_limit") {
        Some(v) => v1_limit(v),
        None => min_over_ancestors(cg, |c| {
            Ok(c.read_u64_opt("memory.limit_in_bytes")?.and_then(v1_limit))
        })?,
    };
    let memsw_usage = if swap {
        cg.read_u64_opt("memory.memsw.usage_in_bytes")?
    } else {
        None
    };
    let (swap_limit, swap_usage) = match memsw_usage {
        None => (None, None),
        Some(memsw_usage) => {
            let memsw_limit = match stat.get("hierarchical_memsw_limit") {
                Some(v) => v1_limit(v),
                None => min_over_ancestors(cg, |c| {
                    Ok(c.read_u64_opt("memory.memsw.limit_in_bytes")?
                        .and_then(v1_limit))
                })?,
            };
            // memsw counts RAM+swap, so swap alone may use what the RAM limit leaves over.
            let swap_limit = match (memsw_limit, limit) {
                (Some(ms), Some(m)) => Some(ms.saturating_sub(m)),
                (Some(ms), None) => Some(ms),
                (None, _) => None,
            };
            (swap_limit, Some(memsw_usage.saturating_sub(usage)))
        }
    };
    let swappiness = if swap {
        cg.read_u64_opt("memory.swappiness")?
    } else {
        None
    };
    Ok(Memory {
        usage,
        limit,
        swap_limit,
        swap_usage,
        swappiness,
        stat,
    })
}

fn read_v2(cg: &Cgroup, swap: bool) -> Result<Memory> {
    let stat_path = cg.file("memory.stat");
    let stat = MemoryStat::parse(Version::V2, &stat_path, parse::read_to_string(&stat_path)?)?;
    let usage = cg.read_u64("memory.current")?;
    let limit = min_over_ancestors(cg, |c| Ok(c.read_max_opt("memory.max")?.flatten()))?;
    let swap_usage = if swap {
        cg.read_u64_opt("memory.swap.current")?
    } else {
        None
    };
    let swap_limit = match swap_usage {
        Some(_) => min_over_ancestors(cg, |c| Ok(c.read_max_opt("memory.swap.max")?.flatten()))?,
        None => None,
    };
    Ok(Memory {
        usage,
        limit,
        swap_limit,
        swap_usage,
        swappiness: None,
        stat,
    })
}

/// The minimum of `f` over the cgroup and all its ancestors (`None` entries ignored).
pub fn min_over_ancestors(
    cg: &Cgroup,
    mut f: impl FnMut(&Cgroup) -> Result<Option<u64>>,
) -> Result<Option<u64>> {
    let mut min: Option<u64> = None;
    for c in cg.self_and_ancestors() {
        if let Some(v) = f(&c)? {
            min = Some(min.map_or(v, |m| m.min(v)));
        }
    }
    Ok(min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;

    #[test]
    fn v1_uses_hierarchical_limits_and_exact_keys() {
        let fx = Fixture::new();
        let cg = fx.v1_cgroup("memory", "lxc/c1");
        fx.write(&cg, "memory.stat", &fx.v1_memory_stat(256 << 20, 384 << 20));
        fx.write(&cg, "memory.usage_in_bytes", "104857600\n");
        fx.write(&cg, "memory.memsw.usage_in_bytes", "115343360\n");
        fx.write(&cg, "memory.swappiness", "60\n");
        let m = read(&cg).unwrap();
        assert_eq!(m.limit, Some(256 << 20));
        assert_eq!(m.swap_limit, Some(128 << 20), "swap alone, not RAM+swap");
        assert_eq!(m.swap_usage, Some(10 << 20));
        assert_eq!(
            m.stat.anon_huge(),
            2 << 20,
            "total_rss_huge must not be shadowed by total_rss"
        );
        assert_eq!(m.stat.mapped(), 3 << 20);
        assert_eq!(m.swappiness, Some(60));
    }

    #[test]
    fn v1_unlimited() {
        let fx = Fixture::new();
        let cg = fx.v1_cgroup("memory", "a");
        fx.write(
            &cg,
            "memory.stat",
            &fx.v1_memory_stat(9223372036854771712, 9223372036854771712),
        );
        fx.write(&cg, "memory.usage_in_bytes", "1\n");
        let m = read(&cg).unwrap();
        assert_eq!(m.limit, None);
        assert_eq!(m.swap_usage, None, "no memsw files: no swap accounting");
    }

    #[test]
    fn v2_min_over_ancestors() {
        let fx = Fixture::new();
        let top = fx.v2_cgroup("c1");
        let cg = fx.v2_cgroup("c1/inner/leaf");
        fx.write(&top, "memory.max", "268435456\n");
        fx.write(&top, "memory.swap.max", "0\n");
        fx.write(&cg, "memory.max", "max\n");
        fx.write(&cg, "memory.swap.max", "max\n");
        fx.write(&cg, "memory.current", "1000\n");
        fx.write(&cg, "memory.swap.current", "0\n");
        fx.write(
            &cg,
            "memory.stat",
            "anon 10\nfile 20\nfile_mapped 5\nanon_thp 2097152\nslab_reclaimable 7\n",
        );
        let m = read(&cg).unwrap();
        assert_eq!(m.limit, Some(268435456));
        assert_eq!(
            m.swap_limit,
            Some(0),
            "swap.max = 0 is a limit, not 'no limit'"
        );
        assert_eq!(m.stat.cache(), 20);
        assert_eq!(
            m.stat.mapped(),
            5,
            "file_mapped must not be shadowed by file"
        );
        assert_eq!(m.stat.slab_reclaimable(), 7);
    }

    #[test]
    fn malformed_files_are_errors() {
        let fx = Fixture::new();
        let cg = fx.v2_cgroup("bad");
        fx.write(&cg, "memory.stat", "anon ten\n");
        fx.write(&cg, "memory.current", "1\n");
        assert!(read(&cg).is_err());
        fx.write(&cg, "memory.stat", "anon 1\n");
        fx.write(&cg, "memory.current", "lots\n");
        assert!(read(&cg).is_err());
        fx.write(&cg, "memory.current", "1\n");
        fx.write(&cg, "memory.max", "-5\n");
        assert!(read(&cg).is_err());
    }

    #[test]
    fn missing_cgroup_is_not_found() {
        let fx = Fixture::new();
        let cg = Cgroup::new(Version::V2, fx.v2_root(), "gone").unwrap();
        assert!(read(&cg).unwrap_err().is_not_found());
    }
}
