//! From a caller to the bytes of a file: who is asking (`crate::caller`) → whose cgroups (a
//! [`View`]) → the file's text from its pure renderer (`crate::render`), shared for
//! `--cache-ms` among one container's readers (`recent`), or the host's copy for everyone
//! while the SIGUSR2 switch (`crate::switch`) is off.
//!
//! A caller in the daemon's own pid namespace gets the view of its own cgroups and is never
//! shared; a container's callers get its init's cgroups, with a trailing `/init.scope`
//! stripped, so every process of a container — in any sub-cgroup — sees the same numbers.

mod inits;
mod recent;

use std::sync::Arc;
use std::time::Instant;

use cgroups::ProcCgroups;

use crate::caller::{Caller, CallerResolver, Scope};
use crate::error::{FsError, FsResult};
use crate::options::Options;
use crate::render::{self, Ctx, View};
use crate::sampler::Sampler;
use crate::switch::Virtualisation;
use crate::tree::VFile;

/// Views of the host for callers, and the files rendered for them.
pub struct Views {
    ctx: Ctx,
    resolver: CallerResolver,
    loadavg: Option<Arc<Sampler>>,
    recent: recent::Recent,
    virt: Arc<Virtualisation>,
}

impl Views {
    /// Views of the host described by `opts`, virtualised while `virt` (the SIGUSR2 switch)
    /// is on; `/proc/loadavg` is virtualised from `loadavg`'s table when there is a sampler
    /// (`-l`), else it is the host's.
    pub fn new(
        opts: &Options,
        virt: Arc<Virtualisation>,
        loadavg: Option<Arc<Sampler>>,
    ) -> FsResult<Views> {
        Ok(Views {
            ctx: Ctx::new(opts)?,
            resolver: CallerResolver::new(&opts.proc_root, opts.compat.tgid_ioctl)?,
            loadavg,
            recent: recent::Recent::new(std::time::Duration::from_millis(opts.cache_ms)),
            virt,
        })
    }

    /// The options the views were made with.
    pub fn options(&self) -> &Options {
        &self.ctx.opts
    }

    /// The SIGUSR2 switch.
    pub fn switch(&self) -> &Virtualisation {
        &self.virt
    }

    fn view_of(&self, scope: Scope, init_cgroup: Option<&std::fs::File>) -> FsResult<View> {
        if let Scope::Container { init } = scope {
            let cgroups = inits::proc_cgroups(&self.ctx.opts.proc_root, init, init_cgroup)?;
            return Ok(View { scope, cgroups });
        }
        let cgroups = ProcCgroups::read(&self.ctx.opts.proc_root, scope.pid())
            .map_err(|e| {
                if e.is_not_found() {
                    FsError::new(libc::ESRCH, format!("process {} is gone", scope.pid()))
                } else {
                    e.into()
                }
            })?
            .prune_init_scope();
        Ok(View {
            scope,
            cgroups: Arc::new(cgroups),
        })
    }

    /// The bytes of `file` as `caller` should see them.
    pub fn render(&self, file: VFile, caller: Caller) -> FsResult<Vec<u8>> {
        if !self.virt.is_on() {
            // Non-virtualisation mode (SIGUSR2): everyone gets the host's copy.
            return Ok(render::host::read(&self.ctx, file)?.into_bytes());
        }
        let resolved = self.resolver.resolve_held(caller.pid)?;
        let scope = resolved.scope;
        let Scope::Container { init } = scope else {
            return self.render_view(file, &self.view_of(scope, None)?);
        };
        if let Some(bytes) = self.recent.get(file, init) {
            return Ok(bytes.to_vec());
        }
        // Taken before the init's cgroups are read: what bounds how stale a shared rendering
        // can be (see `recent`).
        let started = Instant::now();
        // A cached container's cgroup files are read through descriptors its cache entry
        // holds (`cgroups::kept`: checked once per rendering to still be the cgroup their
        // path names, and closed when the container's init goes).
        let bytes = match &resolved.held {
            Some(held) => cgroups::kept::with(&held.cgroup_files, || {
                self.render_view(file, &self.view_of(scope, held.proc_cgroup.as_ref())?)
            })?,
            None => self.render_view(file, &self.view_of(scope, None)?)?,
        };
        self.recent.put(file, init, started, Arc::from(&bytes[..]));
        Ok(bytes)
    }

    /// The bytes of `file` for an explicit view.
    pub fn render_view(&self, file: VFile, view: &View) -> FsResult<Vec<u8>> {
        use render::{
            cpuinfo, diskstats, host, loadavg, meminfo, online, pressure, slabinfo, stat, uptime,
        };
        let ctx = &self.ctx;
        let text = match file {
            VFile::Meminfo => meminfo::render(ctx, view)?,
            VFile::Swaps => meminfo::render_swaps(ctx, view)?,
            VFile::Cpuinfo => cpuinfo::render(ctx, view)?,
            VFile::Stat => stat::render(ctx, view)?,
            VFile::CpuOnline => online::render(ctx, view)?,
            VFile::Uptime => uptime::render(ctx, view)?,
            VFile::Loadavg => match &self.loadavg {
                Some(s) => loadavg::render(ctx, view, s)?,
                None => host::read(ctx, file)?,
            },
            VFile::Diskstats => diskstats::render(ctx, view)?,
            VFile::Slabinfo => slabinfo::render(ctx, view)?,
            VFile::Pressure(p) => pressure::render(ctx, view, p)?,
        };
        Ok(text.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::Host;

    fn views(h: &Host, loadavg: Option<Arc<Sampler>>) -> Views {
        Views::new(&h.opts(), Arc::new(Virtualisation::private()), loadavg).unwrap()
    }

    #[test]
    fn loadavg_is_the_hosts_without_a_sampler_and_the_containers_with_one() {
        let h = Host::hybrid();
        let cg = h.fx.v1_cgroup("cpu", "c");
        h.fx.write(&cg, "tasks", "");
        let view = h.view("c");
        let plain = views(&h, None).render_view(VFile::Loadavg, &view).unwrap();
        assert_eq!(plain, b"0.50 0.40 0.30 2/150 9999\n", "without -l: host");
        let sampler = Arc::new(Sampler::start(&h.opts().proc_root));
        let with = views(&h, Some(sampler.clone()))
            .render_view(VFile::Loadavg, &view)
            .unwrap();
        sampler.stop();
        assert_eq!(
            with, b"0.00 0.00 0.00 0/1 0\n",
            "with -l: the empty cgroup's"
        );
    }

    /// Pure v2, the container's cgroup (and its parent) with no controller enabled — what a
    /// delegation with an empty `cgroup.subtree_control` up the tree gives: every file
    /// renders (from an ancestor's files, the implicit ones, or the host's), with and without
    /// `--enable-cfs` and `-l`; meminfo, swaps and diskstats used to fail with ENOENT.
    #[test]
    fn every_file_renders_for_a_v2_cgroup_without_controllers() {
        let h = Host::unified(&["cpuset", "cpu", "io", "memory", "pids"]);
        for rel in ["c1", "c1/ct"] {
            let cg = h.fx.v2_cgroup(rel);
            h.fx.write(&cg, "cgroup.procs", "");
            h.fx.write(
                &cg,
                "cpu.stat",
                "usage_usec 9\nuser_usec 5\nsystem_usec 4\n",
            );
        }
        let view = h.view("c1/ct");
        let sampler = Arc::new(Sampler::start(&h.opts().proc_root));
        for cfs in [false, true] {
            for loadavg in [None, Some(sampler.clone())] {
                let mut opts = h.opts();
                opts.cfs = cfs;
                let v = Views::new(&opts, Arc::new(Virtualisation::private()), loadavg).unwrap();
                for file in crate::tree::Tree::new(true).all_files() {
                    let r = v.render_view(file, &view);
                    assert!(
                        r.as_ref().is_ok_and(|b| !b.is_empty()),
                        "{file:?} (cfs {cfs}): {r:?}"
                    );
                }
            }
        }
        sampler.stop();
    }

    #[test]
    fn switched_off_every_file_is_the_hosts_copy_for_every_caller() {
        let h = Host::hybrid();
        let caller = h.host_caller("c");
        let v = views(&h, None);
        let host = std::fs::read(h.fx.proc_root().join("meminfo")).unwrap();
        v.switch().set(false);
        assert_eq!(v.render(VFile::Meminfo, caller).unwrap(), host);
        let ghost = Caller {
            pid: 999_999,
            ..caller
        };
        assert_eq!(
            v.render(VFile::Meminfo, ghost).unwrap(),
            host,
            "not even resolved"
        );
    }
}
