//! `/proc/diskstats` per container, from the block I/O the cgroup itself did.
//!
//! lxcfs reads the CFQ-only `blkio.io_*` files, gone since Linux 5.0, so on current kernels
//! it silently serves the host's file (and on cgroup v2 it never looks at `io.stat`, issue
//! #653). Here the counters come from `blkio.throttle.io_serviced/io_service_bytes_recursive`
//! (v1) or `io.stat` (v2): completed reads/writes/discards and sectors; merges, times and
//! in-flight are not tracked per cgroup and are 0. Devices the container never touched are
//! left out, as lxcfs does. The root cgroup is the whole host: it gets the host's file. A v2
//! cgroup without the io controller (no `io.stat`: its parent does not enable it) is counted
//! by the kernel in its nearest ancestor that has it, whose numbers it gets; the host's file
//! when none below the root has it.
//!
//! On v1 the kernel only counts a cgroup's I/O on a device while blk-throttle is active on
//! that device's queue, which it is from the first throttle limit any cgroup sets for the
//! device (verified on 6.18); until then the throttle counters stay 0 and a container's
//! file lists no device.

use cgroups::blkio;

use super::{host, Ctx, View};
use crate::error::FsResult;
use crate::tree::VFile;

/// Render `/proc/diskstats`.
pub fn render(ctx: &Ctx, view: &View) -> FsResult<String> {
    let host = host::read(ctx, VFile::Diskstats)?;
    // v2: a cgroup without the io controller is counted in its nearest ancestor with it.
    let Some(cg) = view.charged_cgroup(ctx, "blkio", "io.stat")? else {
        return Ok(host);
    };
    if cg.is_root() {
        return Ok(host);
    }
    let stats = blkio::read(&cg)?;
    let mut out = String::new();
    for line in host.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 14 {
            continue;
        }
        let (Ok(major), Ok(minor)) = (f[0].parse::<u32>(), f[1].parse::<u32>()) else {
            continue;
        };
        let Some(d) = stats.get(&(major, minor)) else {
            continue;
        };
        if *d == blkio::DevIo::default() {
            continue;
        }
        // Kernel field order after the name: reads, merged, sectors, ms, writes, merged,
        // sectors, ms, in flight, io ms, weighted ms, discards, merged, sectors, ms, flushes,
        // flush ms. Keep the host's field count (older kernels print fewer).
        let all = [
            d.rios,
            0,
            d.rbytes / 512,
            0,
            d.wios,
            0,
            d.wbytes / 512,
            0,
            0,
            0,
            0,
            d.dios,
            0,
            d.dbytes / 512,
            0,
            0,
            0,
        ];
        let n = (f.len() - 3).min(all.len());
        out.push_str(&format!("{major:>4} {minor:>7} {}", f[2]));
        for v in &all[..n] {
            out.push_str(&format!(" {v}"));
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::render::testing::Host;

    #[test]
    fn only_the_containers_io() {
        let h = Host::hybrid();
        let cg = h.fx.v1_cgroup("blkio", "c");
        h.fx.write(
            &cg,
            "blkio.throttle.io_serviced_recursive",
            "254:0 Read 10\n254:0 Write 4\n254:0 Total 14\n253:0 Read 0\nTotal 14\n",
        );
        h.fx.write(
            &cg,
            "blkio.throttle.io_service_bytes_recursive",
            "254:0 Read 40960\n254:0 Write 8192\nTotal 49152\n",
        );
        let out = h.render(super::render, "c");
        assert_eq!(
            out,
            " 254       0 vda 10 0 80 0 4 0 16 0 0 0 0 0 0 0 0 0 0\n"
        );
    }

    #[test]
    fn v2_io_stat_and_root() {
        let h = Host::unified(&["io", "memory", "cpu", "cpuset"]);
        let cg = h.fx.v2_cgroup("c");
        h.fx.write(
            &cg,
            "io.stat",
            "254:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
        );
        assert!(h
            .render(super::render, "c")
            .starts_with(" 254       0 vda 1 0 1 0 0"));
        assert!(
            h.render(super::render, "").contains("zram0"),
            "root cgroup = host"
        );
        h.fx.write(&cg, "io.stat", "254:0 rbytes=x\n");
        assert!(h.try_render(super::render, "c").is_err());
    }

    /// A v2 cgroup without the io controller has no `io.stat`: its I/O is counted in the
    /// nearest ancestor that has one, else the host's file (it used to fail with ENOENT).
    #[test]
    fn v2_cgroup_without_the_io_controller() {
        let h = Host::unified(&["io", "memory"]);
        let c1 = h.fx.v2_cgroup("c1");
        h.fx.v2_cgroup("c1/ct");
        let host = h.render(super::render, "");
        assert_eq!(
            h.render(super::render, "c1/ct"),
            host,
            "nothing below the root"
        );
        h.fx.write(
            &c1,
            "io.stat",
            "254:0 rbytes=1024 wbytes=0 rios=2 wios=0 dbytes=0 dios=0\n",
        );
        assert!(h
            .render(super::render, "c1/ct")
            .starts_with(" 254       0 vda 2 0 2 0 0"));
    }
}
