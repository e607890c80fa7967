//! `/proc/cpuinfo`: the host's processor blocks for the visible CPUs only, renumbered
//! `0..n` (as lxcfs does; other fields such as `siblings` or `apicid` are the host's).

use super::{cpus, host, Ctx, View};
use crate::error::FsResult;
use crate::tree::VFile;

/// Render `/proc/cpuinfo`.
pub fn render(ctx: &Ctx, view: &View) -> FsResult<String> {
    let host = host::read(ctx, VFile::Cpuinfo)?;
    let Some(vis) = cpus::visible(ctx, view)? else {
        return Ok(host);
    };
    let shown = vis.shown_set();
    let mut out = String::with_capacity(host.len());
    let mut next = 0u32;
    for block in host.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut lines = block.trim_start_matches('\n').lines();
        let Some(first) = lines.next() else { continue };
        let n = first
            .strip_prefix("processor")
            .and_then(|r| r.split(':').nth(1))
            .and_then(|v| v.trim().parse::<u32>().ok());
        match n {
            Some(n) if shown.contains(n) => {
                let (label, _) = first.split_once(':').unwrap_or((first, ""));
                out.push_str(&format!("{label}: {next}\n"));
                next += 1;
                for l in lines {
                    out.push_str(l);
                    out.push('\n');
                }
                out.push('\n');
            }
            Some(_) => {}
            // Architectures whose blocks do not start with `processor` (s390x) keep their
            // global blocks.
            None => {
                out.push_str(block.trim_start_matches('\n'));
                out.push_str("\n\n");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::render::testing::Host;

    #[test]
    fn cpuset_filters_and_renumbers() {
        let h = Host::hybrid();
        let cg = h.fx.v1_cgroup("cpuset", "c");
        h.fx.write(&cg, "cpuset.cpus", "1,3\n");
        let out = h.render(super::render, "c");
        let procs: Vec<&str> = out.lines().filter(|l| l.starts_with("processor")).collect();
        assert_eq!(procs, ["processor\t: 0", "processor\t: 1"]);
        // The blocks are the host's cpu1 and cpu3.
        let apic: Vec<&str> = out.lines().filter(|l| l.starts_with("apicid")).collect();
        assert_eq!(apic, ["apicid\t\t: 1", "apicid\t\t: 3"]);
        assert!(out.ends_with("\n\n"));
    }

    #[test]
    fn cfs_quota_caps_the_count() {
        let h = Host::hybrid();
        let cs = h.fx.v1_cgroup("cpuset", "c");
        h.fx.write(&cs, "cpuset.cpus", "0-3\n");
        let cpu = h.fx.v1_cgroup("cpu", "c");
        h.fx.write(&cpu, "cpu.cfs_quota_us", "150000\n");
        h.fx.write(&cpu, "cpu.cfs_period_us", "100000\n");
        let plain = h.render(super::render, "c");
        assert_eq!(plain.matches("processor").count(), 4);
        let cfs = h.render_with(super::render, "c", |o| o.cfs = true);
        assert_eq!(cfs.matches("processor").count(), 2, "ceil(1.5)");
    }

    #[test]
    fn empty_cpuset_inherits_from_parent() {
        let h = Host::hybrid();
        let p = h.fx.v1_cgroup("cpuset", "p");
        h.fx.write(&p, "cpuset.cpus", "2\n");
        let c = h.fx.v1_cgroup("cpuset", "p/c");
        h.fx.write(&c, "cpuset.cpus", "\n");
        assert_eq!(
            h.render(super::render, "p/c").matches("processor").count(),
            1
        );
    }
}
