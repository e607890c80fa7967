//! `/proc/stat`: per-CPU lines for the visible CPUs with the container's own CPU time.
//!
//! Without `--enable-cfs` (lxcfs's formula): for each host `cpuN` with N in the cpuset (N is
//! the physical number, as lxcfs prints it), `user` and `system` are the cgroup's time on that
//! CPU and `idle = host_idle + host_busy − cgroup_busy` (whatever the container did not use
//! counts as idle); nice/iowait/irq/softirq/steal/guest are 0. With `--enable-cfs` and a
//! quota, `n = ceil(quota)` CPUs `cpu0..cpu{n−1}` share the cgroup's total time evenly and
//! idle is the container's age scaled to the allowance minus that (a container using its
//! whole quota shows 100% busy). The `cpu` line is the sum; every other line is the host's.
//!
//! cgroup v1 reads `cpuacct.usage_all`. cgroup v2 has no per-CPU split, so `cpu.stat`'s
//! `user_usec`/`system_usec` are spread evenly over the visible CPUs — lxcfs shows the host's
//! counters on v2 (issues #593, #628).

use cgroups::{cpuacct, Version};

use super::{cpus, host, uptime, Ctx, View};
use crate::error::{FsError, FsResult};
use crate::tree::VFile;

/// `user system` ticks per physical CPU, by CPU (a few entries: a sorted `Vec`, no tree).
type Usage = Vec<(u32, (u64, u64))>;

fn usage_of(u: &Usage, cpu: u32) -> Option<(u64, u64)> {
    u.binary_search_by_key(&cpu, |(c, _)| *c)
        .ok()
        .map(|i| u[i].1)
}

fn ticks(ctx: &Ctx, ns: u64) -> u64 {
    (u128::from(ns) * u128::from(ctx.clk_tck) / 1_000_000_000) as u64
}

/// The cgroup's CPU time per CPU; `None` when there is no CPU accounting to read.
fn usage(ctx: &Ctx, view: &View, cpus: &cgroups::cpuset::CpuSet) -> FsResult<Option<Usage>> {
    let Some(cg) = view.cgroup(ctx, "cpuacct")? else {
        return Ok(None);
    };
    let mut out = Usage::new();
    match cg.version {
        Version::V1 => {
            for t in cpuacct::per_cpu(&cg)? {
                out.push((t.cpu, (ticks(ctx, t.user_ns), ticks(ctx, t.system_ns))));
            }
        }
        Version::V2 => {
            let s = cpuacct::stat_v2(&cg)?;
            let n = cpus.len().max(1) as u64;
            for c in &cpus.0 {
                out.push((
                    *c,
                    (
                        ticks(ctx, s.user_usec * 1000) / n,
                        ticks(ctx, s.system_usec * 1000) / n,
                    ),
                ));
            }
        }
    }
    // As the map it was: sorted by CPU, a CPU listed twice counted once (its last row).
    out.reverse();
    out.sort_by_key(|(c, _)| *c);
    out.dedup_by_key(|(c, _)| *c);
    Ok(Some(out))
}

/// A `cpuN` line's CPU and its first ten counters (missing ones 0; `None` for the `cpu` total,
/// any other line, or a counter that is not a number).
fn parse_cpu_line(line: &str) -> Option<(Option<u32>, [u64; 10])> {
    let mut f = line.split_ascii_whitespace();
    let name = f.next()?.strip_prefix("cpu")?;
    let id = if name.is_empty() {
        None
    } else {
        Some(name.parse().ok()?)
    };
    let mut vals = [0u64; 10];
    for (i, v) in f.enumerate() {
        let v = v.parse().ok()?;
        if let Some(slot) = vals.get_mut(i) {
            *slot = v;
        }
    }
    Some((id, vals))
}

/// Append `name` and the ten counters, space-separated (written in place: a `String` per
/// number was a tenth of a rendering).
fn push_line(out: &mut String, name: &str, v: &[u64; 10]) {
    out.push_str(name);
    for x in v {
        out.push(' ');
        super::digits::push_u64(out, *x, 0);
    }
    out.push('\n');
}

/// Render `/proc/stat`.
pub fn render(ctx: &Ctx, view: &View) -> FsResult<String> {
    let host = host::read(ctx, VFile::Stat)?;
    let Some(vis) = cpus::visible(ctx, view)? else {
        return Ok(host);
    };
    let usage = usage(ctx, view, &vis.cpuset)?;
    // Rows by CPU number (the name is written from it).
    let mut rows: Vec<(u32, [u64; 10])> = Vec::with_capacity(vis.cpuset.len());
    match (vis.exact, &usage) {
        (Some(exact), Some(usage)) => {
            let n = vis.shown.max(1) as u64;
            let (user, system) = usage
                .iter()
                .fold((0, 0), |(u, s), (_, (a, b))| (u + a, s + b));
            let age = uptime::age_secs(ctx, view)?;
            let allowed = (age * exact / n as f64 * ctx.clk_tck as f64) as u64;
            for i in 0..n {
                let (u, s) = (user / n, system / n);
                rows.push((
                    i as u32,
                    [u, 0, s, allowed.saturating_sub(u + s), 0, 0, 0, 0, 0, 0],
                ));
            }
        }
        _ => {
            for l in cgroups::parse::lines(&host) {
                let Some((Some(id), h)) = parse_cpu_line(l) else {
                    continue;
                };
                if !vis.cpuset.contains(id) {
                    continue;
                }
                let row = match &usage {
                    Some(u) => {
                        let (cu, cs) = usage_of(u, id).unwrap_or((0, 0));
                        let host_busy: u64 = h
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| *i != 3)
                            .map(|(_, v)| v)
                            .sum();
                        let idle = (h[3] + host_busy).saturating_sub(cu + cs);
                        [cu, 0, cs, idle, 0, 0, 0, 0, 0, 0]
                    }
                    // No CPU accounting: the host's counters for the visible CPUs.
                    None => h,
                };
                rows.push((id, row));
            }
        }
    }
    if rows.is_empty() {
        return Err(FsError::new(
            libc::EIO,
            "none of the container's CPUs is in the host's /proc/stat",
        ));
    }
    let mut total = [0u64; 10];
    for (_, r) in &rows {
        for (t, v) in total.iter_mut().zip(r) {
            *t += v;
        }
    }
    let mut out = String::with_capacity(host.len());
    push_line(&mut out, "cpu ", &total);
    for (id, r) in &rows {
        out.push_str("cpu");
        super::digits::push_u64(&mut out, u64::from(*id), 0);
        push_line(&mut out, "", r);
    }
    for l in cgroups::parse::lines(&host).filter(|l| !l.starts_with("cpu")) {
        out.push_str(l);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::render::testing::Host;

    #[test]
    fn lines_are_what_to_string_gave() {
        let v = [0, 1, 9, 10, 12345, u64::MAX, 7, 100, 99, 1 << 40];
        let mut out = String::new();
        super::push_line(&mut out, "cpu3", &v);
        let want: String = std::iter::once("cpu3".to_string())
            .chain(v.iter().map(|x| format!(" {x}")))
            .collect::<String>()
            + "\n";
        assert_eq!(out, want);
    }

    fn fields(out: &str, name: &str) -> Vec<u64> {
        let l = out
            .lines()
            .find(|l| l.split_ascii_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in\n{out}"));
        l.split_ascii_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect()
    }

    #[test]
    fn v1_per_cpu_usage_and_idle() {
        let h = Host::hybrid();
        let cs = h.fx.v1_cgroup("cpuset", "c");
        h.fx.write(&cs, "cpuset.cpus", "1,3\n");
        let acct = h.fx.v1_cgroup("cpuacct", "c");
        // cpu1: 10 s user, 2 s system; cpu3: 1 s user.
        h.fx.write(
            &acct,
            "cpuacct.usage_all",
            "cpu user system\n0 0 0\n1 10000000000 2000000000\n2 0 0\n3 1000000000 0\n",
        );
        let clk = 100; // the renderer uses the real CLK_TCK, 100 on Linux
        let out = h.render(super::render, "c");
        let names: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_ascii_whitespace().next())
            .filter(|n| n.starts_with("cpu"))
            .collect();
        assert_eq!(names, ["cpu", "cpu1", "cpu3"]);
        let c1 = fields(&out, "cpu1");
        assert_eq!((c1[0], c1[1], c1[2]), (10 * clk, 0, 2 * clk));
        // host cpu1: busy = 10000+25+3000+300+0+25+600 = 13950, idle 1500000
        assert_eq!(c1[3], 1_500_000 + 13_950 - 12 * clk);
        let total = fields(&out, "cpu");
        let c3 = fields(&out, "cpu3");
        assert_eq!(total[0], c1[0] + c3[0]);
        assert_eq!(total[3], c1[3] + c3[3]);
        for k in [
            "intr",
            "ctxt",
            "btime",
            "processes",
            "procs_running",
            "softirq",
        ] {
            assert!(out.lines().any(|l| l.starts_with(k)), "{k} kept");
        }
    }

    #[test]
    fn v2_is_per_container_too() {
        let h = Host::unified(&["memory", "cpu", "cpuset", "io"]);
        let cg = h.fx.v2_cgroup("c");
        h.fx.write(&cg, "cpuset.cpus.effective", "0-1\n");
        h.fx.write(
            &cg,
            "cpu.stat",
            "usage_usec 6000000\nuser_usec 4000000\nsystem_usec 2000000\n",
        );
        let out = h.render(super::render, "c");
        let c0 = fields(&out, "cpu0");
        assert_eq!(
            (c0[0], c0[2]),
            (200, 100),
            "4 s user and 2 s system over 2 CPUs"
        );
        assert!(!out.contains("cpu2"));
        assert_ne!(fields(&out, "cpu")[0], 40000, "not the host's counters");
    }

    #[test]
    fn cfs_view_renumbers_and_scales_idle() {
        let h = Host::hybrid();
        let cs = h.fx.v1_cgroup("cpuset", "c");
        h.fx.write(&cs, "cpuset.cpus", "0-3\n");
        let cpu = h.fx.v1_cgroup("cpu", "c");
        h.fx.write(&cpu, "cpu.cfs_quota_us", "50000\n");
        h.fx.write(&cpu, "cpu.cfs_period_us", "100000\n");
        let acct = h.fx.v1_cgroup("cpuacct", "c");
        h.fx.write(
            &acct,
            "cpuacct.usage_all",
            "cpu user system\n0 1000000000 0\n1 1000000000 0\n2 0 0\n3 0 0\n",
        );
        h.init_started(100.0);
        let out = h.render_with(super::render, "c", |o| o.cfs = true);
        let names: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_ascii_whitespace().next())
            .filter(|n| n.starts_with("cpu"))
            .collect();
        assert_eq!(names, ["cpu", "cpu0"]);
        assert_eq!(fields(&out, "cpu0")[0], 200);
        // Half a CPU for 100 s is 5000 ticks, 200 of them used: idle is the rest.
        let idle = fields(&out, "cpu0")[3];
        assert!((4790..=4810).contains(&idle), "idle {idle}:\n{out}");
    }

    #[test]
    fn malformed_usage_all_is_an_error() {
        let h = Host::hybrid();
        let acct = h.fx.v1_cgroup("cpuacct", "c");
        h.fx.v1_cgroup("cpuset", "c");
        h.fx.write(&acct, "cpuacct.usage_all", "cpu user system\n0 1\n");
        assert_eq!(
            h.try_render(super::render, "c").unwrap_err().errno,
            libc::EIO
        );
    }
}
