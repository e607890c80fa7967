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

/// The `memory.stat` keys read: v1's hierarchical `total_…` names and limits, and v2's.
const KEYS: [&str; 34] = [
    "total_cache",
    "total_active_anon",
    "total_inactive_anon",
    "total_active_file",
    "total_inactive_file",
    "total_unevictable",
    "total_shmem",
    "total_mapped_file",
    "total_dirty",
    "total_writeback",
    "total_rss_huge",
    "total_swapcached",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
    "file",
    "active_anon",
    "inactive_anon",
    "active_file",
    "inactive_file",
    "unevictable",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "anon_thp",
    "shmem_thp",
    "slab_reclaimable",
    "slab_unreclaimable",
    "kernel_stack",
    "pagetables",
    "swapcached",
    "zswap",
    "zswapped",
    "anon",
];

/// `memory.stat`, exact keys: the values of [`KEYS`], picked out in one pass over the text
/// (it is parsed on every meminfo rendering: a map of every line's key cost an allocation and
/// a hash per line, a tenth of a rendering). Every line must still be `key value`; a key of
/// [`KEYS`] twice is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryStat {
    version: Option<Version>,
    values: [u64; KEYS.len()],
    /// Bit `i`: `KEYS[i]` was present.
    present: u64,
}

impl Default for MemoryStat {
    fn default() -> MemoryStat {
        MemoryStat {
            version: None,
            values: [0; KEYS.len()],
            present: 0,
        }
    }
}

impl MemoryStat {
    /// Parse `memory.stat` text of the given version.
    pub fn parse(version: Version, path: &std::path::Path, text: &str) -> Result<MemoryStat> {
        let mut st = MemoryStat {
            version: Some(version),
            ..MemoryStat::default()
        };
        parse::flat_keyed_pairs(path, text, |n, key, val| {
            // Not `KEYS.iter().position`: a `match` is a jump on the length first.
            let Some(i) = key_index(key) else {
                return Ok(());
            };
            if st.present & (1 << i) != 0 {
                return Err(crate::Error::parse(
                    path,
                    format!("line {n}: duplicate key {key}"),
                ));
            }
            st.values[i] = val;
            st.present |= 1 << i;
            Ok(())
        })?;
        Ok(st)
    }

    /// The value of `key`, one of the keys this reads (any other is `None`).
    pub fn get(&self, key: &str) -> Option<u64> {
        let i = key_index(key)?;
        (self.present & (1 << i) != 0).then_some(self.values[i])
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

/// The index of `key` in [`KEYS`].
fn key_index(key: &str) -> Option<usize> {
    Some(match key {
        "total_cache" => 0,
        "total_active_anon" => 1,
        "total_inactive_anon" => 2,
        "total_active_file" => 3,
        "total_inactive_file" => 4,
        "total_unevictable" => 5,
        "total_shmem" => 6,
        "total_mapped_file" => 7,
        "total_dirty" => 8,
        "total_writeback" => 9,
        "total_rss_huge" => 10,
        "total_swapcached" => 11,
        "hierarchical_memory_limit" => 12,
        "hierarchical_memsw_limit" => 13,
        "file" => 14,
        "active_anon" => 15,
        "inactive_anon" => 16,
        "active_file" => 17,
        "inactive_file" => 18,
        "unevictable" => 19,
        "shmem" => 20,
        "file_mapped" => 21,
        "file_dirty" => 22,
        "file_writeback" => 23,
        "anon_thp" => 24,
        "shmem_thp" => 25,
        "slab_reclaimable" => 26,
        "slab_unreclaimable" => 27,
        "kernel_stack" => 28,
        "pagetables" => 29,
        "swapcached" => 30,
        "zswap" => 31,
        "zswapped" => 32,
        "anon" => 33,
        _ => return None,
    })
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
    let stat = MemoryStat::parse(Version::V1, &stat_path, &parse::read_to_string(&stat_path)?)?;
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
    let stat = MemoryStat::parse(Version::V2, &stat_path, &parse::read_to_string(&stat_path)?)?;
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

    #[test]
    fn key_index_is_the_position_in_keys() {
        for (i, k) in KEYS.iter().enumerate() {
            assert_eq!(key_index(k), Some(i), "{k}");
        }
        assert_eq!(key_index("pgfault"), None);
        let p = std::path::Path::new("memory.stat");
        let st = MemoryStat::parse(Version::V2, p, "anon 1\npgfault 2\npgfault 3\n").unwrap();
        assert_eq!((st.get("anon"), st.get("pgfault")), (Some(1), None));
        assert!(MemoryStat::parse(Version::V2, p, "anon 1\nanon 2\n").is_err());
        assert!(MemoryStat::parse(Version::V2, p, "anon x\n").is_err());
    }
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
