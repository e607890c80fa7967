//! `/proc/loadavg` per container (`-l/--enable-loadavg`): the averages and running count the
//! [`Sampler`] keeps for the container's cpu cgroup, the thread total of that cgroup's subtree
//! now, and as the last field the newest pid as seen *inside* the container (lxcfs printed
//! the host pid) — both found when the file is read rather than at every refresh. Without
//! `-l` (no sampler) the file is the host's; that choice is the view layer's (`crate::view`).

use std::path::Path;

use super::{host, Ctx, View};
use crate::error::FsResult;
use crate::sampler::{self, Sampler, FIXED_1, FSHIFT};
use crate::tree::VFile;

fn fmt_load(x: u64) -> String {
    let int = x >> FSHIFT;
    let frac = ((x & (FIXED_1 - 1)) * 100) >> FSHIFT;
    format!("{int}.{frac:02}")
}

/// Threads of a cgroup subtree right now, and the newest (highest) host tid among them.
/// Read when the file is read, not at every refresh: the task lists are the per-thread cost.
fn threads(cg: &cgroups::Cgroup) -> (u64, u32) {
    let (mut n, mut newest) = (0, 0);
    sampler::walk(cg, |dir, _| {
        for t in cgroups::pids::tasks(dir).unwrap_or_default() {
            n += 1;
            newest = newest.max(t);
        }
    });
    (n, newest)
}

/// A host pid as seen in its innermost pid namespace (`NSpid`'s last field).
fn pid_in_container(proc_root: &Path, pid: u32) -> u32 {
    cgroups::process::Status::read(proc_root, pid).map_or(0, |s| s.pid_inside())
}

/// Render `/proc/loadavg` for a view from `sampler`'s table.
pub fn render(ctx: &Ctx, view: &View, sampler: &Sampler) -> FsResult<String> {
    let Some(cg) = view.cgroup(ctx, "cpu")? else {
        return host::read(ctx, VFile::Loadavg);
    };
    let loads = sampler.loads(&cg);
    let (total, newest) = threads(&cg);
    let last = pid_in_container(&ctx.opts.proc_root, newest);
    Ok(format!(
        "{} {} {} {}/{} {}\n",
        fmt_load(loads.avenrun[0]),
        fmt_load(loads.avenrun[1]),
        fmt_load(loads.avenrun[2]),
        loads.running,
        total.max(1),
        last
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::Host;

    #[test]
    fn fixed_point_formatting() {
        assert_eq!(fmt_load(0), "0.00");
        assert_eq!(fmt_load(FIXED_1 + FIXED_1 / 2), "1.50");
        assert_eq!(fmt_load(2 * FIXED_1 + FIXED_1 / 100 + 1), "2.01");
    }

    #[test]
    fn counts_tasks_of_a_fixture_cgroup() {
        let h = Host::hybrid();
        let cg = h.fx.v1_cgroup("cpu", "c");
        h.fx.write(&cg, "tasks", "100\n101\n");
        let sub = h.fx.v1_cgroup("cpu", "c/sub");
        h.fx.write(&sub, "tasks", "102\n");
        for (tid, st) in [(100, "R"), (101, "S"), (102, "D")] {
            h.fx.write_file(
                &format!("proc/{tid}/stat"),
                &format!("{tid} (x y) {st} 1 1\n"),
            );
        }
        h.fx.write_file(
            "proc/102/status",
            "Name:\tx\nUid:\t0 0 0 0\nGid:\t0 0 0 0\nGroups:\t\nNSpid:\t102\t7\n",
        );
        let sampler = Sampler::start(&h.opts().proc_root);
        let out = h.render(|ctx, view| render(ctx, view, &sampler), "c");
        sampler.stop();
        assert_eq!(out, "0.00 0.00 0.00 2/3 7\n");
    }
}
