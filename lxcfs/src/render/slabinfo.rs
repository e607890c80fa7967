//! `/proc/slabinfo`: the container memcg's own slab statistics (v1
//! `memory.kmem.slabinfo`) when the kernel provides them, else the host's file. Readable by
//! the same users as the host's file only (0400 root): lxcfs 5.0.3 reported it 0444 and let
//! any user read the host's slab statistics through it.

use super::{host, Ctx, View};
use crate::error::FsResult;
use crate::tree::VFile;

/// Render `/proc/slabinfo`.
pub fn render(ctx: &Ctx, view: &View) -> FsResult<String> {
    if let Some(cg) = view.cgroup(ctx, "memory")? {
        if cg.version == cgroups::Version::V1 {
            // Recent kernels keep the file but leave it empty.
            if let Some(t) = cg
                .read_opt("memory.kmem.slabinfo")?
                .filter(|t| !t.trim().is_empty())
            {
                return Ok(t);
            }
        }
    }
    host::read(ctx, VFile::Slabinfo)
}

#[cfg(test)]
mod tests {
    use crate::render::testing::Host;

    #[test]
    fn memcg_slabinfo_or_host() {
        let h = Host::hybrid();
        let cg = h.fx.v1_cgroup("memory", "c");
        h.fx.write(&cg, "memory.kmem.slabinfo", "");
        assert!(h.render(super::render, "c").contains("kmalloc-64"));
        h.fx.write(
            &cg,
            "memory.kmem.slabinfo",
            "slabinfo - version: 2.1\nmine 1 1 1 1 1\n",
        );
        assert!(h.render(super::render, "c").contains("mine"));
    }
}
