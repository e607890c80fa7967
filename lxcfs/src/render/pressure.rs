//! `/proc/pressure/{cpu,io,memory}`: the container's cgroup2 PSI file (every cgroup2
//! cgroup has them, even on a hybrid host where no controller is enabled in cgroup2), else the
//! host's. lxcfs 7.0 looks the io file up through the v1 name `blkio` and never finds it.

use cgroups::psi;

use super::{host, Ctx, View};
use crate::error::FsResult;
use crate::tree::{Psi, VFile};

/// Render a pressure file.
pub fn render(ctx: &Ctx, view: &View, res: Psi) -> FsResult<String> {
    if let Some(cg) = view.cgroup(ctx, "unified")? {
        if let Some(t) = psi::read(&cg, res.name())? {
            return Ok(t);
        }
    }
    host::read(ctx, VFile::Pressure(res))
}

#[cfg(test)]
mod tests {
    use crate::render::testing::Host;
    use crate::tree::Psi;

    #[test]
    fn cgroup_psi_or_host() {
        let h = Host::hybrid();
        let cg = h.fx.v2_cgroup("c");
        let mine = "some avg10=9.00 avg60=0.00 avg300=0.00 total=9\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        h.fx.write(&cg, "cpu.pressure", mine);
        assert_eq!(h.render(|c, v| super::render(c, v, Psi::Cpu), "c"), mine);
        assert!(
            h.render(|c, v| super::render(c, v, Psi::Io), "c")
                .contains("avg10=1.00"),
            "host fallback"
        );
    }
}
