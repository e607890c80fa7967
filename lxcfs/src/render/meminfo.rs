//! `/proc/meminfo` and `/proc/swaps`.
//!
//! Formula (kB; lxcfs's, with its bugs fixed): `MemTotal = min(host, limit)` where the limit
//! is the minimum over the cgroup and its ancestors; `MemFree = min(MemTotal − usage, host
//! MemFree)` (lxcfs: `MemTotal − usage` even when unlimited, and unsigned, so it could wrap);
//! `MemAvailable = min(MemFree + active_file + inactive_file + slab_reclaimable, MemTotal)`
//! (lxcfs 7.0's formula; 5.0.3 added all of `cache`, shmem included); LRU, shmem, mapped,
//! dirty, writeback, huge pages from `memory.stat` with exact keys (lxcfs 5.0.3 prefix-matched
//! them, so `AnonHugePages` and v2 `Mapped` were always 0). Swap is the swap-only limit
//! (lxcfs showed the RAM+swap memsw limit as SwapTotal). Every other line is the host's.
//!
//! A v2 cgroup without the memory controller (its parent does not enable it) is shown as its
//! nearest ancestor that has it — the memcg the kernel charges it to and limits it by — and as
//! the host when no cgroup below the root has it (lxcfs 5.0.3: the host's meminfo; ours used
//! to fail with ENOENT).

use cgroups::memory::{self, Memory};

use super::{host, Ctx, View};
use crate::error::FsResult;
use crate::tree::VFile;

/// The v2 file that says a cgroup has the memory controller (the root has none): a cgroup
/// without it is shown as its nearest ancestor with it (`View::charged_cgroup`), or as the
/// host when there is none.
const USAGE_V2: &str = "memory.current";

/// Swap as the container sees it, kB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Swap {
    total: u64,
    used: u64,
}

/// The value of `key` in meminfo-shaped text (the first such line whose value parses).
#[cfg(test)]
fn host_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, rest) = l.split_once(':')?;
        (k == key).then(|| rest.split_ascii_whitespace().next()?.parse().ok())?
    })
}

/// The four host values the formulas use, found in one pass over the host's text (each
/// `host_value` call scans it: four scans were a tenth of a rendering).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct HostMem {
    total: Option<u64>,
    free: Option<u64>,
    swap_total: Option<u64>,
    swap_free: Option<u64>,
}

impl HostMem {
    /// As `host_value` for each key: the first line of that key whose value parses.
    fn parse(text: &str) -> HostMem {
        let mut h = HostMem::default();
        for l in cgroups::parse::lines(text) {
            let Some(at) = l.bytes().position(|b| b == b':') else {
                continue;
            };
            let (k, rest) = (&l[..at], &l[at + 1..]);
            let slot = match k {
                "MemTotal" => &mut h.total,
                "MemFree" => &mut h.free,
                "SwapTotal" => &mut h.swap_total,
                "SwapFree" => &mut h.swap_free,
                _ => continue,
            };
            if slot.is_none() {
                *slot = rest
                    .split_ascii_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok());
            }
            if h.total.is_some()
                && h.free.is_some()
                && h.swap_total.is_some()
                && h.swap_free.is_some()
            {
                break;
            }
        }
        h
    }
}

/// The cgroup's memory; its swap files only when swap can show (saves three reads per
/// render on the common swapless host).
fn read_memory(ctx: &Ctx, host: &HostMem, cg: &cgroups::Cgroup) -> FsResult<Memory> {
    let swap = ctx.opts.swap && host.swap_total.unwrap_or(0) > 0;
    Ok(memory::read_with(cg, swap)?)
}

struct Numbers {
    total: u64,
    free: u64,
    mem: Memory,
    swap: Swap,
}

fn numbers(ctx: &Ctx, host: &HostMem, mem: Memory) -> Numbers {
    let host_total = host.total.unwrap_or(0);
    let host_free = host.free.unwrap_or(host_total);
    let total = mem.limit.map_or(host_total, |l| host_total.min(l / 1024));
    let usage = (mem.usage / 1024).min(total);
    let free = (total - usage).min(host_free);

    let host_swap_total = host.swap_total.unwrap_or(0);
    let host_swap_free = host.swap_free.unwrap_or(0);
    let swap = if !ctx.opts.swap {
        Swap { total: 0, used: 0 }
    } else {
        match mem.swap_usage {
            // No swap accounting: nothing better than the host's numbers.
            None => Swap {
                total: host_swap_total,
                used: host_swap_total.saturating_sub(host_swap_free),
            },
            Some(used) => {
                let used = used / 1024;
                let mut total = mem
                    .swap_limit
                    .map_or(host_swap_total, |l| host_swap_total.min(l / 1024));
                if mem.swappiness == Some(0) {
                    // The container cannot swap out more: what it has swapped is all there is.
                    total = used;
                }
                Swap {
                    total,
                    used: used.min(total),
                }
            }
        }
    };
    Numbers {
        total,
        free,
        mem,
        swap,
    }
}

/// Append `key:` padded to 16 characters, `v` right-aligned in 8, ` kB` — the kernel's
/// layout, byte for byte what `format!("{:<16}{v:>8} kB\n", format!("{key}:"))` gives, without
/// its two allocations and formatter passes per line (a third of a rendering's instructions).
fn push_kb_line(out: &mut String, key: &str, v: u64) {
    out.push_str(key);
    out.push(':');
    let label = key.chars().count() + 1;
    for _ in label..16 {
        out.push(' ');
    }
    super::digits::push_u64(out, v, 8);
    out.push_str(" kB\n");
}

/// Render `/proc/meminfo`.
pub fn render(ctx: &Ctx, view: &View) -> FsResult<String> {
    let host = host::read(ctx, VFile::Meminfo)?;
    let Some(cg) = view.charged_cgroup(ctx, "memory", USAGE_V2)? else {
        return Ok(host);
    };
    let hm = HostMem::parse(&host);
    let n = numbers(ctx, &hm, read_memory(ctx, &hm, &cg)?);
    let st = &n.mem.stat;
    let kb = |b: u64| b / 1024;
    let file_lru = kb(st.active_file() + st.inactive_file());
    let available = (n.free + file_lru + kb(st.slab_reclaimable())).min(n.total);
    let anon = kb((st.active_anon() + st.inactive_anon()).saturating_sub(st.shmem()));
    let (zswap, zswapped) = st.zswap();
    let slab = kb(st.slab_reclaimable() + st.slab_unreclaimable());
    let is_v2 = cg.version == cgroups::Version::V2;

    let mut out = String::with_capacity(host.len() + 64);
    for line in cgroups::parse::lines(&host) {
        // By bytes: `str::lines` and `split_once` (a char searcher per call) were 3 % of a
        // rendering for ~55 short lines.
        let key = line
            .bytes()
            .position(|b| b == b':')
            .map_or(line, |at| &line[..at]);
        let v = match key {
            "MemTotal" => Some(n.total),
            "MemFree" => Some(n.free),
            "MemAvailable" => Some(available),
            "Buffers" => Some(0),
            "Cached" => Some(kb(st.cache())),
            "SwapCached" => Some(if ctx.opts.swap {
                kb(st.swap_cached())
            } else {
                0
            }),
            "Active" => Some(kb(st.active_anon() + st.active_file())),
            "Inactive" => Some(kb(st.inactive_anon() + st.inactive_file())),
            "Active(anon)" => Some(kb(st.active_anon())),
            "Inactive(anon)" => Some(kb(st.inactive_anon())),
            "Active(file)" => Some(kb(st.active_file())),
            "Inactive(file)" => Some(kb(st.inactive_file())),
            "Unevictable" => Some(kb(st.unevictable())),
            "SwapTotal" => Some(n.swap.total),
            "SwapFree" => Some(n.swap.total - n.swap.used),
            "Dirty" => Some(kb(st.dirty())),
            "Writeback" => Some(kb(st.writeback())),
            "AnonPages" => Some(if is_v2 {
                st.get("anon").map_or(anon, kb)
            } else {
                anon
            }),
            "Mapped" => Some(kb(st.mapped())),
            "Shmem" => Some(kb(st.shmem())),
            "Slab" => Some(slab),
            "SReclaimable" => Some(kb(st.slab_reclaimable())),
            "SUnreclaim" => Some(kb(st.slab_unreclaimable())),
            "KernelStack" if is_v2 => Some(kb(st.kernel_stack())),
            "PageTables" if is_v2 => Some(kb(st.page_tables())),
            "AnonHugePages" => Some(kb(st.anon_huge())),
            "ShmemHugePages" => Some(kb(st.shmem_huge())),
            "ShmemPmdMapped" => Some(0),
            "Zswap" => Some(kb(zswap)),
            "Zswapped" => Some(kb(zswapped)),
            _ => None,
        };
        match v {
            Some(v) => push_kb_line(&mut out, key, v),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// Render `/proc/swaps`: the header, and one `none … virtual` line when the container has
/// swap.
pub fn render_swaps(ctx: &Ctx, view: &View) -> FsResult<String> {
    let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
    let Some(cg) = view.charged_cgroup(ctx, "memory", USAGE_V2)? else {
        return host::read(ctx, VFile::Swaps);
    };
    let host = HostMem::parse(&host::read(ctx, VFile::Meminfo)?);
    let n = numbers(ctx, &host, read_memory(ctx, &host, &cg)?);
    let mut out = header.to_string();
    if n.swap.total > 0 {
        out.push_str(&format!(
            "none{:36}virtual\t\t{}\t{}\t0\n",
            "", n.swap.total, n.swap.used
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::Host;

    #[test]
    fn kb_lines_are_the_format_layout() {
        for key in [
            "MemTotal",
            "Inactive(file)",
            "ShmemHugePages",
            "AVeryLongKeyIndeed",
            "K",
        ] {
            for v in [0, 7, 12345678, 123456789, u64::MAX] {
                let mut out = String::new();
                push_kb_line(&mut out, key, v);
                assert_eq!(out, format!("{:<16}{v:>8} kB\n", format!("{key}:")));
            }
        }
    }

    #[test]
    fn host_mem_is_host_value_in_one_pass() {
        let h = Host::hybrid();
        let text = format!("{}MemFree: bad kB\nSwapFree: 5 kB\n", h.meminfo);
        let hm = HostMem::parse(&text);
        assert_eq!(hm.total, host_value(&text, "MemTotal"));
        assert_eq!(hm.free, host_value(&text, "MemFree"));
        assert_eq!(hm.swap_total, host_value(&text, "SwapTotal"));
        assert_eq!(hm.swap_free, host_value(&text, "SwapFree"));
        let odd = "MemTotal: x kB\nMemTotal: 9 kB\n";
        assert_eq!(HostMem::parse(odd).total, Some(9));
    }

    fn value(text: &str, key: &str) -> u64 {
        host_value(text, key).unwrap_or_else(|| panic!("{key} missing in\n{text}"))
    }

    #[test]
    fn v1_limits_and_exact_keys() {
        let h = Host::hybrid();
        let cg = h.fx.v1_cgroup("memory", "lxc/c1");
        h.fx.write(
            &cg,
            "memory.stat",
            &h.fx.v1_memory_stat(256 << 20, 9223372036854771712),
        );
        h.fx.write(&cg, "memory.usage_in_bytes", &format!("{}\n", 100 << 20));
        let out = h.render(super::render, "lxc/c1");
        assert_eq!(value(&out, "MemTotal"), 262144);
        assert_eq!(value(&out, "MemFree"), 262144 - 102400);
        assert_eq!(value(&out, "Cached"), 65536);
        assert_eq!(
            value(&out, "MemAvailable"),
            262144 - 102400 + 40 * 1024 + 24 * 1024
        );
        assert_eq!(
            value(&out, "AnonHugePages"),
            2048,
            "lxcfs 5.0.3 shows 0 here"
        );
        assert_eq!(value(&out, "Mapped"), 3072);
        assert_eq!(value(&out, "AnonPages"), 33 * 1024 - 1024);
        assert_eq!(value(&out, "Buffers"), 0);
        // Lines lxcfs does not virtualise are the host's, in the host's order.
        assert_eq!(
            value(&out, "VmallocTotal"),
            value(&h.meminfo, "VmallocTotal")
        );
        let keys = |t: &str| {
            t.lines()
                .map(|l| l.split(':').next().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&out), keys(&h.meminfo));
        assert!(
            out.contains("MemTotal:         262144 kB\n"),
            "kernel layout:\n{out}"
        );
    }

    #[test]
    fn usage_above_limit_does_not_wrap() {
        let h = Host::hybrid();
        let cg = h.fx.v1_cgroup("memory", "c");
        h.fx.write(
            &cg,
            "memory.stat",
            &h.fx.v1_memory_stat(64 << 20, 9223372036854771712),
        );
        h.fx.write(&cg, "memory.usage_in_bytes", &format!("{}\n", 80 << 20));
        let out = h.render(super::render, "c");
        assert_eq!(value(&out, "MemFree"), 0);
        assert!(value(&out, "MemAvailable") <= value(&out, "MemTotal"));
    }

    #[test]
    fn unlimited_uses_host_total_and_free() {
        let h = Host::hybrid();
        let cg = h.fx.v1_cgroup("memory", "c");
        h.fx.write(
            &cg,
            "memory.stat",
            &h.fx
                .v1_memory_stat(9223372036854771712, 9223372036854771712),
        );
        h.fx.write(&cg, "memory.usage_in_bytes", "4096\n");
        let out = h.render(super::render, "c");
        assert_eq!(value(&out, "MemTotal"), value(&h.meminfo, "MemTotal"));
        assert_eq!(
            value(&out, "MemFree"),
            value(&h.meminfo, "MemFree"),
            "not host_total - usage"
        );
    }

    #[test]
    fn swap_is_swap_only_limit() {
        let h = Host::hybrid_with_swap(1 << 20);
        let cg = h.fx.v1_cgroup("memory", "c");
        h.fx.write(
            &cg,
            "memory.stat",
            &h.fx.v1_memory_stat(256 << 20, 384 << 20),
        );
        h.fx.write(&cg, "memory.usage_in_bytes", &format!("{}\n", 200 << 20));
        h.fx.write(
            &cg,
            "memory.memsw.usage_in_bytes",
            &format!("{}\n", 210 << 20),
        );
        h.fx.write(&cg, "memory.swappiness", "60\n");
        let out = h.render(super::render, "c");
        assert_eq!(
            value(&out, "SwapTotal"),
            131072,
            "lxcfs shows the memsw limit 393216"
        );
        assert_eq!(value(&out, "SwapFree"), 131072 - 10240);
        let swaps = h.render(super::render_swaps, "c");
        assert_eq!(
            swaps
                .lines()
                .nth(1)
                .unwrap()
                .split_ascii_whitespace()
                .collect::<Vec<_>>(),
            ["none", "virtual", "131072", "10240", "0"]
        );
        h.fx.write(&cg, "memory.swappiness", "0\n");
        let out = h.render(super::render, "c");
        assert_eq!(
            (value(&out, "SwapTotal"), value(&out, "SwapFree")),
            (10240, 0)
        );
        let no_swap = h.render_with(super::render, "c", |o| o.swap = false);
        assert_eq!(
            (value(&no_swap, "SwapTotal"), value(&no_swap, "SwapFree")),
            (0, 0)
        );
        let swaps = h.render_with(super::render_swaps, "c", |o| o.swap = false);
        assert_eq!(swaps.lines().count(), 1);
    }

    #[test]
    fn v2_hierarchy_and_slab() {
        let h = Host::unified(&["memory", "cpu", "cpuset", "io", "pids"]);
        let top = h.fx.v2_cgroup("c1");
        h.fx.write(&top, "memory.max", &format!("{}\n", 512u64 << 20));
        let cg = h.fx.v2_cgroup("c1/inner");
        h.fx.write(&cg, "memory.max", "max\n");
        h.fx.write(&cg, "memory.current", &format!("{}\n", 100 << 20));
        h.fx.write(&cg, "memory.stat", "anon 1048576\nfile 2097152\nfile_mapped 1048576\nactive_file 1048576\ninactive_file 1048576\nslab_reclaimable 4096\nslab_unreclaimable 8192\nshmem 0\n");
        let out = h.render(super::render, "c1/inner");
        assert_eq!(value(&out, "MemTotal"), 524288);
        assert_eq!(value(&out, "Mapped"), 1024, "lxcfs 5.0.3 shows 0 on v2");
        assert_eq!(value(&out, "AnonPages"), 1024);
        assert_eq!(value(&out, "Slab"), 12);
        assert_eq!(
            value(&out, "SwapTotal"),
            0,
            "no swap.current: host swap (none)"
        );
    }

    /// A v2 container whose cgroup has no memory controller (`c1`'s `subtree_control` does
    /// not enable it): it is charged to and limited by `c1`, so it sees `c1`'s numbers; with
    /// no memory controller below the root at all (a delegation with `subtree_control` empty
    /// up the tree), the host's files. Both used to fail with ENOENT (issue 18).
    #[test]
    fn v2_cgroup_without_the_memory_controller() {
        let h = Host::unified(&["memory", "cpu", "cpuset", "io", "pids"]);
        let c1 = h.fx.v2_cgroup("c1");
        let ct = h.fx.v2_cgroup("c1/ct");
        // The container's own cgroup has only the core and implicit files.
        h.fx.write(&ct, "cgroup.procs", "");
        h.fx.write(
            &ct,
            "cpu.stat",
            "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
        );
        let out = h.render(super::render, "c1/ct");
        assert_eq!(
            out, h.meminfo,
            "no memcg below the root: the host's meminfo"
        );
        assert_eq!(
            h.render(super::render_swaps, "c1/ct"),
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
            "the host's swaps"
        );

        h.fx.write(&c1, "memory.max", &format!("{}\n", 256u64 << 20));
        h.fx.write(&c1, "memory.current", &format!("{}\n", 64u64 << 20));
        h.fx.write(&c1, "memory.stat", "anon 1048576\nfile 2097152\n");
        let out = h.render(super::render, "c1/ct");
        assert_eq!(value(&out, "MemTotal"), 262144, "c1's limit applies");
        assert_eq!(value(&out, "MemFree"), 262144 - 65536, "c1's usage");
        assert_eq!(value(&out, "Cached"), 2048);
        assert_eq!(
            h.render(super::render, "c1/ct/deeper/still"),
            out,
            "any depth below"
        );

        // With swap on the host, swaps follows the same memcg.
        let h = Host::unified(&["memory"]);
        let c1 = h.fx.v2_cgroup("c1");
        h.fx.v2_cgroup("c1/ct");
        for (f, v) in [
            ("memory.max", "max"),
            ("memory.current", "4096"),
            ("memory.stat", "anon 4096"),
            ("memory.swap.max", "134217728"),
            ("memory.swap.current", "1048576"),
        ] {
            h.fx.write(&c1, f, &format!("{v}\n"));
        }
        let mut meminfo = h.meminfo.replace(
            "SwapTotal:             0 kB",
            "SwapTotal:        1048576 kB",
        );
        meminfo = meminfo.replace(
            "SwapFree:              0 kB",
            "SwapFree:         1048576 kB",
        );
        h.fx.write_file("proc/meminfo", &meminfo);
        let swaps = h.render(super::render_swaps, "c1/ct");
        assert_eq!(
            swaps
                .lines()
                .nth(1)
                .unwrap()
                .split_ascii_whitespace()
                .collect::<Vec<_>>(),
            ["none", "virtual", "131072", "1024", "0"],
            "{swaps}"
        );
    }

    #[test]
    fn malformed_cgroup_file_is_an_error_not_a_panic() {
        let h = Host::hybrid();
        let cg = h.fx.v1_cgroup("memory", "c");
        h.fx.write(&cg, "memory.stat", "total_cache lots\n");
        h.fx.write(&cg, "memory.usage_in_bytes", "1\n");
        assert_eq!(
            h.try_render(super::render, "c").unwrap_err().errno,
            libc::EIO
        );
        h.fx.write(&cg, "memory.stat", "total_cache 1\n");
        h.fx.write(&cg, "memory.usage_in_bytes", "\n");
        assert_eq!(
            h.try_render(super::render, "c").unwrap_err().errno,
            libc::EIO
        );
    }
}
