//! `/proc/uptime` for a container: its init's age, and idle = visible CPUs × age − the
//! cgroup's CPU time (the kernel's idle is summed over CPUs too; lxcfs subtracts the CPU
//! time from the wall-clock age, so a busy 2-CPU container showed idle 0). A caller in the
//! host's pid namespace gets the host's file.

use cgroups::cpuacct;

use super::{cpus, host, Ctx, View};
use crate::caller::Scope;
use crate::error::{FsError, FsResult};
use crate::tree::VFile;

/// Seconds since boot, from `CLOCK_BOOTTIME` (what `/proc/uptime` and process start times
/// are measured against).
fn boottime() -> f64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map_or(0.0, |ts| ts.tv_sec() as f64 + ts.tv_nsec() as f64 / 1e9)
}

/// Start time of a process in seconds after boot (field 22 of `/proc/<pid>/stat`).
fn start_secs(ctx: &Ctx, pid: u32) -> FsResult<f64> {
    let p = ctx.proc(&format!("{pid}/stat"));
    let text = std::fs::read_to_string(&p).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => {
            FsError::new(libc::ESRCH, format!("process {pid} is gone"))
        }
        _ => FsError::io(format!("read {}", p.display()), &e),
    })?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let start: u64 = rest
        .split_ascii_whitespace()
        .nth(19)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| FsError::new(libc::EIO, format!("{}: no start time", p.display())))?;
    Ok(start as f64 / ctx.clk_tck as f64)
}

/// How long the view's container has been up (the host's uptime for host callers).
pub fn age_secs(ctx: &Ctx, view: &View) -> FsResult<f64> {
    match view.scope {
        Scope::Host { .. } => Ok(boottime()),
        Scope::Container { init } => Ok((boottime() - start_secs(ctx, init)?).max(0.0)),
    }
}

/// Render `/proc/uptime`.
pub fn render(ctx: &Ctx, view: &View) -> FsResult<String> {
    let Scope::Container { init } = view.scope else {
        return host::read(ctx, VFile::Uptime);
    };
    let up = (boottime() - start_secs(ctx, init)?).max(0.0);
    let ncpu = cpus::visible(ctx, view)?.map_or(1, |v| v.shown.max(1));
    let used = match view.cgroup(ctx, "cpuacct")? {
        Some(cg) => cpuacct::total_ns(&cg)? as f64 / 1e9,
        None => 0.0,
    };
    let idle = (up * ncpu as f64 - used).max(0.0);
    Ok(format!("{up:.2} {idle:.2}\n"))
}

#[cfg(test)]
mod tests {
    use crate::render::testing::Host;

    #[test]
    fn age_of_init_and_idle() {
        let h = Host::hybrid();
        let acct = h.fx.v1_cgroup("cpuacct", "c");
        h.fx.write(&acct, "cpuacct.usage", "1000000000\n");
        let cs = h.fx.v1_cgroup("cpuset", "c");
        h.fx.write(&cs, "cpuset.cpus", "0\n");
        h.init_started(10.0);
        let out = h.render(super::render, "c");
        let v: Vec<f64> = out
            .split_ascii_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        assert!(
            (v[0] - 10.0).abs() < 0.5,
            "the init's age, not the host's: {out}"
        );
        // One visible CPU for 10 s, 1 s of it used by the cgroup.
        assert!((v[1] - (v[0] - 1.0)).abs() < 0.02, "{out}");
        assert!(out.ends_with('\n'));
    }

    #[test]
    fn malformed_stat_is_an_error() {
        let h = Host::hybrid();
        h.fx.write_file(
            &format!("proc/{}/stat", crate::render::testing::INIT),
            "42 (x) S 1\n",
        );
        assert_eq!(
            h.try_render(super::render, "").unwrap_err().errno,
            libc::EIO
        );
    }
}
