//! What every virtual file says for a given caller.
//!
//! [`Renderer::render`] resolves the caller to a [`View`] (whose cgroups, host or container)
//! and dispatches to one module per file. Each module documents its formula and where it
//! deliberately differs from lxcfs 5.0.3 (see also `lxcfs/README.md`). A controller the host
//! does not have makes the file fall back to the host's copy, as lxcfs does.

mod cgroupstats;
mod cpuinfo;
mod cpus;
mod diskstats;
mod host;
pub mod loadavg;
mod meminfo;
mod online;
mod pressure;
mod recent;
mod slabinfo;
mod stat;
mod uptime;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use cgroups::{Cgroup, Layout, ProcCgroups};

use crate::caller::{CallerResolver, Scope};
use crate::error::{FsError, FsResult};
use crate::fs::Caller;
use crate::options::Options;
use crate::switch::Virtualisation;
use crate::tree::VFile;

/// Host facts every renderer needs, fixed at start-up.
pub struct Ctx {
    /// The options.
    pub opts: Options,
    /// The host's cgroup hierarchies.
    pub layout: Layout,
    /// `sysconf(_SC_CLK_TCK)`: the unit of `/proc/<pid>/stat` times and `/proc/stat`.
    pub clk_tck: u64,
}

impl Ctx {
    /// A procfs path.
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.opts.proc_root.join(rel)
    }
}

/// Whose numbers a file shows.
#[derive(Debug, Clone)]
pub struct View {
    /// Host caller (own cgroups) or container (its init's cgroups).
    pub scope: Scope,
    /// The cgroups of `scope.pid()`, with a trailing `/init.scope` stripped.
    pub cgroups: ProcCgroups,
}

impl View {
    /// The view's cgroup for `controller`; `None` if the host has no such hierarchy (the
    /// file then falls back to the host's copy).
    pub fn cgroup(&self, ctx: &Ctx, controller: &str) -> FsResult<Option<Cgroup>> {
        match ctx.layout.cgroup_for(controller, &self.cgroups) {
            Ok(cg) => Ok(Some(cg)),
            Err(cgroups::Error::NoController(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Computes file contents for callers.
pub struct Renderer {
    ctx: Ctx,
    resolver: CallerResolver,
    loadavg: Option<loadavg::Sampler>,
    recent: recent::Recent,
    virt: Arc<Virtualisation>,
}

impl Renderer {
    /// A renderer for the host described by `opts`, virtualising until told otherwise.
    pub fn new(opts: &Options) -> FsResult<Renderer> {
        Self::with_switch(opts, Arc::new(Virtualisation::private()))
    }

    /// A renderer whose virtualisation is switched by `virt` (SIGUSR2).
    pub fn with_switch(opts: &Options, virt: Arc<Virtualisation>) -> FsResult<Renderer> {
        let layout = Layout::detect(&opts.proc_root)?;
        // SAFETY: sysconf has no memory-safety preconditions.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let ctx = Ctx {
            opts: opts.clone(),
            layout,
            clk_tck: if tck > 0 { tck as u64 } else { 100 },
        };
        let resolver = CallerResolver::new(&opts.proc_root)?;
        let loadavg = opts.loadavg.then(|| loadavg::Sampler::start(&ctx));
        let recent = recent::Recent::new(std::time::Duration::from_millis(opts.cache_ms));
        Ok(Renderer {
            ctx,
            resolver,
            loadavg,
            recent,
            virt,
        })
    }

    /// The host facts.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The view `caller` gets.
    pub fn view(&self, caller: Caller) -> FsResult<View> {
        self.view_of(self.resolver.resolve(caller.pid)?)
    }

    fn view_of(&self, scope: Scope) -> FsResult<View> {
        let cgroups = ProcCgroups::read(&self.ctx.opts.proc_root, scope.pid())
            .map_err(|e| {
                if e.is_not_found() {
                    FsError::new(libc::ESRCH, format!("process {} is gone", scope.pid()))
                } else {
                    e.into()
                }
            })?
            .prune_init_scope();
        Ok(View { scope, cgroups })
    }

    /// The SIGUSR2 switch.
    pub fn switch(&self) -> &Virtualisation {
        &self.virt
    }

    /// The resolver of callers (its cache, for tests).
    pub fn resolver(&self) -> &CallerResolver {
        &self.resolver
    }

    /// The bytes of `file` as `caller` should see them.
    pub fn render(&self, file: VFile, caller: Caller) -> FsResult<Vec<u8>> {
        if !self.virt.is_on() {
            // Non-virtualisation mode (SIGUSR2): everyone gets the host's copy.
            return Ok(host::read(&self.ctx, file)?.into_bytes());
        }
        let scope = self.resolver.resolve(caller.pid)?;
        let Scope::Container { init } = scope else {
            return self.render_view(file, &self.view_of(scope)?);
        };
        if let Some(bytes) = self.recent.get(file, init) {
            return Ok(bytes.to_vec());
        }
        // Taken before the init's cgroups are read: what bounds how stale a shared rendering
        // can be (see `recent`).
        let started = Instant::now();
        let bytes = self.render_view(file, &self.view_of(scope)?)?;
        self.recent.put(file, init, started, Arc::from(&bytes[..]));
        Ok(bytes)
    }

    /// The bytes of `file` for an explicit view (tests build views over fixture trees).
    pub fn render_view(&self, file: VFile, view: &View) -> FsResult<Vec<u8>> {
        let ctx = &self.ctx;
        let text = match file {
            VFile::Meminfo => meminfo::render(ctx, view)?,
            VFile::Swaps => meminfo::render_swaps(ctx, view)?,
            VFile::Cpuinfo => cpuinfo::render(ctx, view)?,
            VFile::Stat => stat::render(ctx, view)?,
            VFile::CpuOnline => online::render(ctx, view)?,
            VFile::Uptime => uptime::render(ctx, view)?,
            VFile::Loadavg => match &self.loadavg {
                Some(s) => s.render(ctx, view)?,
                None => host::read(ctx, file)?,
            },
            VFile::Diskstats => diskstats::render(ctx, view)?,
            VFile::Slabinfo => slabinfo::render(ctx, view)?,
            VFile::Pressure(p) => pressure::render(ctx, view, p)?,
        };
        Ok(text.into_bytes())
    }

    /// Stop background work.
    pub fn shutdown(&self) {
        if let Some(s) = &self.loadavg {
            s.stop();
        }
    }
}

#[cfg(test)]
pub(crate) mod testing;
