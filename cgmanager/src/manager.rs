//! The daemon's core, independent of D-Bus: the host's hierarchies, the admin's policy, and
//! the operations (in [`crate::ops`]) that each take a [`Caller`] and return a value or a
//! refusal ([`crate::errors::Error`]). The D-Bus layer ([`crate::service`]) only finds the
//! caller, converts arguments and encodes the answer. The core is synchronous (it waits in
//! cgroupfs, procfs and NSS); the D-Bus layer runs it on tokio's blocking pool.

use std::path::PathBuf;
use std::sync::Arc;

use cgroups::{Cgroup, Hierarchy, Layout, ProcCgroups, Version};

use crate::access::{may_access, Inode, X};
use crate::caller::{Caller, HostNs};
use crate::controllers::{select, Arity};
use crate::errors::{from_cgroups, Error, Kind, Result};
use crate::policy::Policy;
use crate::target;

/// cgroup v2: the leaf below its own cgroup a delegated daemon lives in
/// ([`Manager::take_leaf`]).
pub const LEAF: &str = "daemon";

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct Config {
    /// Deepest cgroup (levels below the hierarchy root) a Create may make (CGManager's
    /// `--max-depth`, default 16).
    pub max_depth: usize,
    /// The kernel's list of files a v2 delegatee owns.
    pub delegate_list: PathBuf,
    /// Take socket peers' pidfds from `SO_PEERPIDFD` where the kernel has it (Linux ≥ 6.5);
    /// false (a switch for tests) pins them by pid as on older kernels.
    pub peer_pidfd: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_depth: 16,
            delegate_list: PathBuf::from(cgroups::manage::DELEGATE_LIST),
            peer_pidfd: true,
        }
    }
}

/// The core.
pub struct Manager {
    /// The daemon's namespaces and procfs.
    pub host: HostNs,
    /// The host's hierarchies.
    pub layout: Layout,
    /// Settings.
    pub config: Config,
    /// Delegation policy.
    pub policy: Policy,
    /// The daemon's own cgroups when it started (`%D` in policy paths).
    pub(crate) own: ProcCgroups,
    /// cgroup v2: the leaf below its own cgroup the daemon moved itself into
    /// ([`Manager::take_leaf`]), if it did.
    pub(crate) leaf: Option<Cgroup>,
    /// Cgroups to remove once empty (RemoveOnEmpty, Prune); its task runs in the daemon.
    pub watch: Arc<crate::watch::Watch>,
}

impl Manager {
    /// A core over the host as the daemon sees it.
    pub fn new(host: HostNs, layout: Layout, config: Config, policy: Policy) -> Result<Manager> {
        let own =
            ProcCgroups::read(&host.proc_root, std::process::id()).map_err(|e| from_cgroups(&e))?;
        Ok(Manager {
            host,
            layout,
            config,
            policy,
            own,
            leaf: None,
            watch: crate::watch::Watch::new(),
        })
    }

    /// cgroup v2 keeps processes in leaves: a cgroup that holds a process cannot enable
    /// controllers for its children (EBUSY), so a daemon living in its own cgroup could not
    /// give delegations below it (`%D`) any controller. Where that cgroup was delegated to the
    /// daemon — systemd's `Delegate=yes`, which marks it `trusted.delegate` — the daemon moves
    /// itself into the leaf [`LEAF`] below it, leaving its own cgroup free to enable
    /// controllers ([`Manager::delegate`] does, as delegations need them). Elsewhere it stays
    /// where it was put: the cgroup is someone else's to arrange. Call before serving.
    pub fn take_leaf(&mut self) -> Result<()> {
        let Some(h) = self.layout.unified() else {
            return Ok(());
        };
        let Ok(own) = self.cgroup_of(&self.own, h) else {
            return Ok(());
        };
        if own.is_root() {
            // The root may hold processes and enable controllers both.
            return Ok(());
        }
        if !own.is_delegated() {
            tracing::info!(
                "{} is not delegated to the daemon (no trusted.delegate; systemd: Delegate=yes): \
                 it stays there and enables no controllers in it",
                own.abs_path()
            );
            return Ok(());
        }
        let leaf = own.descendant(LEAF).map_err(|e| from_cgroups(&e))?;
        leaf.create(0o755).map_err(|e| from_cgroups(&e))?;
        leaf.move_process(std::process::id())
            .map_err(|e| from_cgroups(&e))?;
        tracing::info!(
            "moved into {} so that {} can enable controllers for the delegations below it",
            leaf.abs_path(),
            own.abs_path()
        );
        self.leaf = Some(leaf);
        Ok(())
    }

    /// The one hierarchy a single-controller method names.
    pub(crate) fn one(&self, controller: &str) -> Result<&Hierarchy> {
        select(&self.layout, controller, Arity::One)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::new(Kind::NoSuchController, controller))
    }

    /// Run `f` for every hierarchy a controller list names. With more than one hierarchy, a
    /// hierarchy where the caller lacks permission or the cgroup is missing is skipped (as
    /// CGManager did for `all`); the request fails only if no hierarchy succeeded.
    pub(crate) fn each<T>(
        &self,
        controller: &str,
        mut f: impl FnMut(&Hierarchy) -> Result<T>,
    ) -> Result<Vec<T>> {
        let hs = select(&self.layout, controller, Arity::Many)?;
        let multi = hs.len() > 1;
        let mut out = Vec::new();
        let mut skipped = None;
        for h in hs {
            match f(h) {
                Ok(v) => out.push(v),
                Err(e) if multi && matches!(e.kind(), Kind::PermissionDenied | Kind::NotFound) => {
                    tracing::debug!("skipping {}: {e:?}", h.mount_point.display());
                    skipped.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        match (out.is_empty(), skipped) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }

    /// The cgroup a process is in, in one hierarchy.
    pub(crate) fn cgroup_of(&self, procs: &ProcCgroups, h: &Hierarchy) -> Result<Cgroup> {
        let path = match h.version {
            Version::V1 => procs
                .lines
                .iter()
                .find(|l| l.id != 0 && l.controllers.iter().any(|c| h.controllers.contains(c)))
                .map(|l| l.path.as_str()),
            Version::V2 => procs.unified_path(),
        }
        .ok_or_else(|| {
            Error::new(
                Kind::NoSuchController,
                format!(
                    "the process is not in hierarchy {}",
                    h.mount_point.display()
                ),
            )
        })?;
        Cgroup::in_hierarchy(h, path).map_err(|_| {
            Error::new(
                Kind::OutsideSubtree,
                format!(
                    "cgroup {path} is outside what the daemon can see of {}",
                    h.mount_point.display()
                ),
            )
        })
    }

    /// The caller's own cgroup: the base of relative paths and the bound of what it may touch.
    pub(crate) fn base(&self, c: &Caller, h: &Hierarchy) -> Result<Cgroup> {
        self.cgroup_of(&c.cgroups, h)
    }

    /// The base for the `*Abs` methods: the hierarchy root for host root, else the caller's own
    /// cgroup (a process may not leave its subtree).
    pub(crate) fn abs_base(&self, c: &Caller, h: &Hierarchy) -> Result<Cgroup> {
        if c.host_root {
            Cgroup::new(h.version, &h.mount_point, "").map_err(|e| from_cgroups(&e))
        } else {
            self.base(c, h)
        }
    }

    /// Resolve a path argument below the caller's cgroup and check the caller can reach it
    /// (search permission on every directory from its cgroup down to the target's parent).
    ///
    /// An absolute path may also name a cgroup in the caller's delegated subtree (the admin's
    /// policy gave it that subtree; it need not be inside it to manage it).
    pub(crate) fn resolve(&self, c: &Caller, base: &Cgroup, arg: &str) -> Result<Cgroup> {
        match target::resolve(base, arg) {
            Ok(cg) => {
                self.check_reach(c, base, &cg)?;
                Ok(cg)
            }
            Err(e) if e.is(Kind::OutsideSubtree) && arg.starts_with('/') => {
                let root = Cgroup::new(base.version, &base.mount_point, "")
                    .map_err(|e| from_cgroups(&e))?;
                let Some(d) = self.delegated_root(c, &root) else {
                    return Err(e);
                };
                let cg = target::resolve(&d, arg).map_err(|_| e)?;
                self.check_reach(c, &d, &cg)?;
                Ok(cg)
            }
            Err(e) => Err(e),
        }
    }

    /// The cgroup that bounds what the caller may do around `cg`: its own cgroup, or its
    /// delegation point when `cg` lies in its delegated subtree.
    pub(crate) fn bound_for(&self, c: &Caller, base: &Cgroup, cg: &Cgroup) -> Cgroup {
        if cg.is_within(base) {
            return base.clone();
        }
        match self.delegated_root(c, cg) {
            Some(d) if cg.is_within(&d) => d,
            _ => base.clone(),
        }
    }

    /// The caller's delegation point in the hierarchy of `any` (a cgroup of that hierarchy),
    /// if the policy gives it one and it exists and is the caller's.
    pub(crate) fn delegated_root(&self, c: &Caller, any: &Cgroup) -> Option<Cgroup> {
        use std::os::unix::fs::MetadataExt;
        let h = self
            .layout
            .hierarchies
            .iter()
            .find(|h| h.mount_point == any.mount_point)?;
        let (d, _) = self.delegation_point(c, h)?;
        let md = target::stat_beneath(&d, None).ok()?;
        (md.uid() == c.uid).then_some(d)
    }

    fn check_reach(&self, c: &Caller, base: &Cgroup, cg: &Cgroup) -> Result<()> {
        let Some(parent) = cg.parent() else {
            return Ok(());
        };
        if !parent.is_within(base) {
            return Ok(());
        }
        for dir in parent
            .self_and_ancestors()
            .take_while(|d| d.is_within(base))
        {
            match target::stat_beneath(&dir, None) {
                Ok(md) if !may_access(c, &Inode::from(&md), X) => {
                    return Err(Error::new(
                        Kind::PermissionDenied,
                        format!("uid {} may not search {}", c.uid, dir.abs_path()),
                    ))
                }
                // Missing directories are reported by the operation itself.
                Ok(_) => {}
                Err(e) if e.is(Kind::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Open a file of a cgroup with `flags` and check on the open file that the caller may
    /// access it with `want` (opening has no effect on cgroupfs until read or written).
    pub(crate) fn open_checked(
        &self,
        c: &Caller,
        cg: &Cgroup,
        file: &str,
        flags: nix::fcntl::OFlag,
        want: u32,
        verb: &str,
    ) -> Result<std::fs::File> {
        let f = std::fs::File::from(target::open_beneath(cg, Some(file), flags)?);
        let md = f
            .metadata()
            .map_err(|e| crate::errors::from_io(&e, "stat"))?;
        if may_access(c, &Inode::from(&md), want) {
            Ok(f)
        } else {
            Err(Error::new(
                Kind::PermissionDenied,
                format!(
                    "uid {} may not {verb} {}/{file}",
                    c.uid,
                    cg.abs_path().trim_end_matches('/')
                ),
            ))
        }
    }

    /// Check the caller may access an existing cgroup directory or one of its files.
    pub(crate) fn need(
        &self,
        c: &Caller,
        cg: &Cgroup,
        file: Option<&str>,
        want: u32,
        verb: &str,
    ) -> Result<std::fs::Metadata> {
        let md = target::stat_beneath(cg, file)?;
        if may_access(c, &Inode::from(&md), want) {
            Ok(md)
        } else {
            let what = match file {
                Some(f) => format!("{}/{f}", cg.abs_path().trim_end_matches('/')),
                None => cg.abs_path(),
            };
            Err(Error::new(
                Kind::PermissionDenied,
                format!("uid {} may not {verb} {what}", c.uid),
            ))
        }
    }
}
