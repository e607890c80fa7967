//! Delegation (interface `org.linuxcontainers.cgmanager1`): an unprivileged user gets its own
//! subtree where the admin's policy says, with the policy's limits set at the delegation point
//! (root-owned, so the user cannot raise them), and the directory plus the kernel's delegation
//! files chowned to it. The first move into the subtree is done by the daemon (v2's
//! common-ancestor rule forbids the user); after that the kernel lets the user manage the
//! subtree itself.

use cgroups::{Cgroup, Hierarchy, Version};
use nix::unistd::{Gid, Group, Uid, User};

use crate::access::{may_access, Inode, W};
use crate::caller::{Caller, Victim};
use crate::controllers::{hierarchy_name, select, Arity};
use crate::errors::{from_cgroups, Error, Kind, Result};
use crate::manager::Manager;
use crate::policy::Rule;
use crate::target;

/// One delegated subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// Hierarchy name (as ListControllers shows it).
    pub hierarchy: String,
    /// Absolute path of the delegation point in that hierarchy.
    pub path: String,
}

/// Names a policy's `controllers` may use for a hierarchy.
fn names(h: &Hierarchy) -> Vec<String> {
    let mut n = h.controllers.clone();
    match h.version {
        Version::V2 => n.push("unified".into()),
        Version::V1 if n.iter().any(|c| c == "name=systemd") => n.push("systemd".into()),
        Version::V1 => {}
    }
    n
}

impl Manager {
    fn rule_for(&self, c: &Caller) -> Option<(&Rule, String)> {
        let name = User::from_uid(Uid::from_raw(c.uid))
            .ok()
            .flatten()
            .map(|u| u.name);
        let mut gids = vec![c.gid];
        gids.extend(&c.groups);
        let rule = self.policy.rule_for(c.uid, name.as_deref(), &gids, |g| {
            Group::from_gid(Gid::from_raw(g))
                .ok()
                .flatten()
                .map(|g| g.name)
        })?;
        Some((rule, name.unwrap_or_else(|| c.uid.to_string())))
    }

    /// The caller's delegation point in a hierarchy according to the policy (it may not exist
    /// yet).
    pub(crate) fn delegation_point(&self, c: &Caller, h: &Hierarchy) -> Option<(Cgroup, &Rule)> {
        let (rule, user) = self.rule_for(c)?;
        if !rule.covers(&names(h)) {
            return None;
        }
        let own = self.cgroup_of(&self.own, h).ok()?;
        let path = rule.expand(&user, c.uid, &own.abs_path());
        let cg = Cgroup::new(h.version, &h.mount_point, &path).ok()?;
        Some((cg, rule))
    }

    /// Refuse creating `new` cgroups ending at `target` if that breaks the caller's policy
    /// limits (only for targets inside the caller's delegation; host root is not limited).
    pub(crate) fn check_quota(
        &self,
        c: &Caller,
        h: &Hierarchy,
        target: &Cgroup,
        new: usize,
    ) -> Result<()> {
        if c.host_root {
            return Ok(());
        }
        let Some((d, rule)) = self.delegation_point(c, h) else {
            return Ok(());
        };
        if !target.is_within(&d) || *target == d {
            return Ok(());
        }
        let depth = target.depth() - d.depth();
        if depth > rule.max_depth as usize {
            return Err(Error::new(
                Kind::LimitExceeded,
                format!(
                    "{} would be {depth} levels below your delegation {} (policy allows {})",
                    target.abs_path(),
                    d.abs_path(),
                    rule.max_depth
                ),
            ));
        }
        let limit = rule.max_cgroups as usize;
        let (have, _) = count_descendants(&d, limit + 1);
        if have + new > limit {
            return Err(Error::new(
                Kind::LimitExceeded,
                format!(
                "your delegation {} has {have} cgroups; {new} more would pass the policy's {limit}",
                d.abs_path()
            ),
            ));
        }
        Ok(())
    }

    /// On cgroup v1 the kernel counts no cgroups: the owner of a delegated v1 cgroup can
    /// `mkdir` below it past the policy's `max_cgroups` and `max_depth`, which only bind what
    /// the daemon makes. Once a delegation is over either, the daemon refuses to move processes
    /// or make cgroups in it for the user (and logs it), until the user removes enough. (On v2
    /// the kernel enforces both itself.)
    pub(crate) fn check_not_over(&self, c: &Caller, h: &Hierarchy, target: &Cgroup) -> Result<()> {
        if c.host_root {
            return Ok(());
        }
        let Some((d, rule)) = self.delegation_point(c, h) else {
            return Ok(());
        };
        if !target.is_within(&d) {
            return Ok(());
        }
        let limit = rule.max_cgroups as usize;
        let (have, depth) = count_descendants(&d, limit + 1);
        if have > limit || depth > rule.max_depth as usize {
            let count = if have > limit {
                format!("more than {limit}")
            } else {
                have.to_string()
            };
            let why = format!(
                "your delegation {} is over its policy ({count} cgroups, {depth} levels deep; the \
                 policy allows {limit} and {}): cgroups made there with mkdir count too. Remove \
                 some (Prune, Remove, rmdir) and try again",
                d.abs_path(),
                rule.max_depth
            );
            tracing::warn!(uid = c.uid, "refused: {why}");
            return Err(Error::new(Kind::LimitExceeded, why));
        }
        Ok(())
    }

    /// Delegate: get (creating on demand) the caller's subtree in every hierarchy the
    /// controller argument names and the policy covers.
    pub fn delegate(&self, c: &Caller, controller: &str) -> Result<Vec<Delegation>> {
        let hs = self.delegated_hierarchies(c, controller)?;
        let mut out = Vec::new();
        for (h, d, rule) in hs {
            self.ensure_delegation(c, h, &d, rule)?;
            out.push(Delegation {
                hierarchy: hierarchy_name(h),
                path: d.abs_path(),
            });
        }
        Ok(out)
    }

    /// Enter: move one of the caller's own processes (host pid) into `cgroup` below its
    /// delegation point (created if missing, within the policy's limits).
    pub fn enter(&self, c: &Caller, controller: &str, cgroup: &str, pid: u32) -> Result<()> {
        let v = Victim::load(&self.host, pid)?;
        if !(c.host_root || v.pid == c.pid || v.status.uids[0] == c.uid) {
            return Err(Error::new(
                Kind::PermissionDenied,
                format!(
                    "process {pid} belongs to uid {}, not to you (uid {})",
                    v.status.uids[0], c.uid
                ),
            ));
        }
        for (h, d, _) in self.delegated_hierarchies(c, controller)? {
            let md = target::stat_beneath(&d, None).map_err(|_| {
                Error::new(
                    Kind::NotDelegated,
                    format!("{} does not exist yet; call Delegate first", d.abs_path()),
                )
            })?;
            if !may_access(c, &Inode::from(&md), W) {
                return Err(Error::new(
                    Kind::NotDelegated,
                    format!(
                        "{} is not delegated to uid {}; call Delegate first",
                        d.abs_path(),
                        c.uid
                    ),
                ));
            }
            let cg = target::resolve(&d, cgroup)?;
            self.check_not_over(c, h, &cg)?;
            let missing = self.missing_below(&d, &cg)?;
            if !missing.is_empty() {
                self.check_quota(c, h, &cg, missing.len())?;
                self.make(c, &missing)?;
            }
            self.write_pid(&v, &cg)?;
        }
        Ok(())
    }

    /// Release: remove the caller's delegated subtrees (they must have no processes left).
    /// Returns how many cgroups were removed.
    pub fn release(&self, c: &Caller, controller: &str) -> Result<usize> {
        let mut n = 0usize;
        for (_, d, _) in self.delegated_hierarchies(c, controller)? {
            match target::stat_beneath(&d, None) {
                Err(e) if e.is(Kind::NotFound) => continue,
                Err(e) => return Err(e),
                Ok(md) if !c.host_root && std::os::unix::fs::MetadataExt::uid(&md) != c.uid => {
                    return Err(Error::new(
                        Kind::PermissionDenied,
                        format!("{} does not belong to uid {}", d.abs_path(), c.uid),
                    ))
                }
                Ok(_) => {}
            }
            n += d.remove_recursive().map_err(|e| match e.errno() {
                libc::EBUSY | libc::ENOTEMPTY => Error::new(
                    Kind::Busy,
                    format!("{} still has processes; stop them first", d.abs_path()),
                ),
                _ => from_cgroups(&e),
            })?;
            tracing::info!(uid = c.uid, "released {}", d.dir().display());
        }
        Ok(n)
    }

    fn delegated_hierarchies<'a>(
        &'a self,
        c: &Caller,
        controller: &str,
    ) -> Result<Vec<(&'a Hierarchy, Cgroup, &'a Rule)>> {
        let hs = select(&self.layout, controller, Arity::Many)?;
        let explicit = controller != "all";
        if self.rule_for(c).is_none() {
            return Err(Error::new(
                Kind::NotDelegated,
                format!("the admin's policy has no delegation for uid {}", c.uid),
            ));
        }
        let mut out = Vec::new();
        for h in hs {
            match self.delegation_point(c, h) {
                Some((d, rule)) => out.push((h, d, rule)),
                None if explicit => {
                    return Err(Error::new(
                        Kind::NotDelegated,
                        format!(
                            "the admin's policy delegates no {} hierarchy to uid {}",
                            hierarchy_name(h),
                            c.uid
                        ),
                    ))
                }
                None => {}
            }
        }
        if out.is_empty() {
            return Err(Error::new(
                Kind::NotDelegated,
                format!(
                    "the admin's policy delegates none of {controller:?} to uid {}",
                    c.uid
                ),
            ));
        }
        Ok(out)
    }

    fn ensure_delegation(&self, c: &Caller, h: &Hierarchy, d: &Cgroup, rule: &Rule) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        self.refuse_holding_the_daemon(h, d)?;
        let root = Cgroup::new(h.version, &h.mount_point, "").map_err(|e| from_cgroups(&e))?;
        let missing = self.missing_below(&root, d)?;
        if missing.is_empty() {
            let md = target::stat_beneath(d, None)?;
            if md.uid() != c.uid && md.uid() != 0 {
                return Err(Error::new(
                    Kind::PermissionDenied,
                    format!("{} exists and belongs to uid {}", d.abs_path(), md.uid()),
                ));
            }
        }
        // Decided before anything is made: a delegation that cannot get what the policy gives
        // it is refused whole.
        let plan = match h.version {
            Version::V2 => Some(self.plan_controllers(h, d, rule)?),
            Version::V1 => None,
        };
        // Everything below is idempotent, and redone on every Delegate: the controllers and
        // limits the policy gives are there after each call that succeeds.
        let mut made = Vec::new();
        let result = (|| {
            for m in &missing {
                if m.create(0o755).map_err(|e| from_cgroups(&e))? {
                    made.push(m.clone());
                    m.inherit_cpuset().map_err(|e| from_cgroups(&e))?;
                }
            }
            if let Some(plan) = &plan {
                self.enable_controllers(d, plan)?;
                self.enable_at_point(c, d, plan)?;
            }
            self.set_limits(h, d, rule, plan.as_ref())?;
            let files = d.delegation_files(&self.config.delegate_list);
            d.chown(&files, c.uid, c.gid).map_err(|e| from_cgroups(&e))
        })();
        if let Err(e) = result {
            for m in made.iter().rev() {
                let _ = m.remove();
            }
            return Err(e);
        }
        if !missing.is_empty() {
            tracing::info!(uid = c.uid, "delegated {}", d.dir().display());
        }
        Ok(())
    }

    /// Where the daemon lives in a hierarchy now (v2: its leaf, once it moved there).
    fn daemon_cgroup(&self, h: &Hierarchy) -> Option<Cgroup> {
        match (&self.leaf, h.version) {
            (Some(leaf), Version::V2) => Some(leaf.clone()),
            _ => self.cgroup_of(&self.own, h).ok(),
        }
    }

    /// A delegation point must not hold the daemon: its owner could move the daemon about
    /// (moving a process in v2 takes write access to the cgroups, not the process's uid) and
    /// limit it. A policy whose path leads there (`%D`, or `%D/%u` for the user `daemon`) gets
    /// nothing.
    fn refuse_holding_the_daemon(&self, h: &Hierarchy, d: &Cgroup) -> Result<()> {
        match self.daemon_cgroup(h) {
            Some(me) if me.is_within(d) => Err(Error::new(
                Kind::NotDelegated,
                format!(
                    "the policy's delegation point {} would hold the daemon itself (in {}); \
                     the admin must put delegations beside it, e.g. path = \"%D/users/%u\"",
                    d.abs_path(),
                    me.abs_path()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// cgroup v2: which controllers the delegation point gets, and the cgroups above it where
    /// the daemon enables them. A v2 cgroup may use only the controllers its parent enables in
    /// `cgroup.subtree_control`. The daemon enables, in every cgroup on the way down to the
    /// delegation point's parent that is its to arrange — below the root, not above its own
    /// cgroup (the service manager's), its own only once it has left it for its leaf
    /// ([`Manager::take_leaf`]) — the controllers the rule delegates: every one it has itself
    /// for `all` or `unified`, each one named, and `memory` and `pids` where the rule sets
    /// `memory_max` and `pids_max` (without them those limits could not be set). A controller
    /// named or needed for a limit that the cgroups above do not offer is refused here, before
    /// anything is made, saying where it is missing.
    fn plan_controllers(&self, h: &Hierarchy, d: &Cgroup, rule: &Rule) -> Result<Plan> {
        let own = self.cgroup_of(&self.own, h).ok();
        let arranged = |a: &Cgroup| {
            !a.is_root()
                && match &own {
                    Some(o) if a == o => self.leaf.is_some(),
                    Some(o) => !o.is_within(a),
                    None => true,
                }
        };
        let mut chain: Vec<Cgroup> = d
            .parent()
            .map(|p| p.self_and_ancestors().collect())
            .unwrap_or_default();
        chain.reverse();
        let first = chain.iter().position(arranged).unwrap_or(chain.len());
        let way: Vec<Cgroup> = chain[first..].to_vec();
        // What the highest cgroup on the way (or the delegation point) may use: what the last
        // cgroup the daemon leaves alone enables (the kernel's cgroup.controllers, read from a
        // cgroup that exists before anything is made).
        let Some(above) = first.checked_sub(1).and_then(|i| chain.get(i)) else {
            return Ok(Plan::default());
        };
        let offered = above.subtree_control().map_err(|e| from_cgroups(&e))?;
        let on_host = |c: &str| h.controllers.iter().any(|x| x == c);
        let mut need: Vec<String> = Vec::new();
        let add = |list: &mut Vec<String>, c: &str| {
            if on_host(c) && !list.iter().any(|x| x == c) {
                list.push(c.to_string());
            }
        };
        for c in &rule.controllers {
            add(&mut need, cgroups::layout::v2_name(c));
        }
        if rule.memory_bytes().is_some() {
            add(&mut need, "memory");
        }
        if rule.pids_max.is_some() {
            add(&mut need, "pids");
        }
        let missing: Vec<&String> = need.iter().filter(|c| !offered.contains(c)).collect();
        if !missing.is_empty() {
            let names = missing
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let top = way.first().unwrap_or(d);
            let why = match &own {
                Some(o) if above == o => format!(
                    "the daemon runs in {} itself, and cgroup v2 lets a cgroup with processes \
                     enable no controllers for its children: start it where that cgroup is \
                     delegated to it (systemd: Delegate=yes) and it moves into {}/{}",
                    o.abs_path(),
                    o.abs_path().trim_end_matches('/'),
                    crate::manager::LEAF
                ),
                _ => format!(
                    "the daemon does not change {}, which belongs to the service manager \
                     (it arranges only below its own cgroup{}): delegate the controllers to \
                     cgmanager's unit (systemd: Delegate=yes)",
                    above.abs_path(),
                    own.as_ref()
                        .map(|o| format!(" {}", o.abs_path()))
                        .unwrap_or_default()
                ),
            };
            return Err(Error::new(
                Kind::NoSuchController,
                format!(
                    "the policy delegates {names} at {}, but {} does not enable {} for {} \
                     (its cgroup.subtree_control: {}): {why}",
                    d.abs_path(),
                    above.abs_path(),
                    if missing.len() == 1 { "it" } else { "them" },
                    top.abs_path(),
                    if offered.is_empty() {
                        "empty".to_string()
                    } else {
                        offered.join(" ")
                    }
                ),
            ));
        }
        let mut want = need;
        if rule
            .controllers
            .iter()
            .any(|c| c == "all" || c == "unified")
        {
            for c in &offered {
                add(&mut want, c);
            }
        }
        Ok(Plan { way, want })
    }

    /// Enable the planned controllers on the way down (the cgroups exist by now).
    fn enable_controllers(&self, d: &Cgroup, plan: &Plan) -> Result<()> {
        for a in &plan.way {
            let have = a.subtree_control().map_err(|e| from_cgroups(&e))?;
            let add: Vec<&String> = plan.want.iter().filter(|c| !have.contains(c)).collect();
            if add.is_empty() {
                continue;
            }
            let names = add.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" ");
            a.enable_controllers(&add).map_err(|e| {
                let busy = e.errno() == libc::EBUSY;
                Error::new(
                    if busy {
                        Kind::Busy
                    } else {
                        from_cgroups(&e).kind()
                    },
                    if busy {
                        format!(
                            "cannot enable {names} in {} for the delegation {}: processes live \
                             in it, and cgroup v2 lets a cgroup with processes enable no \
                             controllers for its children; move them into a child cgroup",
                            a.abs_path(),
                            d.abs_path()
                        )
                    } else {
                        format!(
                            "cannot enable {names} in {} for the delegation {}: {e}",
                            a.abs_path(),
                            d.abs_path()
                        )
                    },
                )
            })?;
            tracing::info!(
                "enabled {names} in {} for the delegation {}",
                a.abs_path(),
                d.abs_path()
            );
        }
        Ok(())
    }

    /// The planned controllers also in the delegation point's own `cgroup.subtree_control`,
    /// added to what is there (never removed), so that the cgroups the user makes or enters
    /// below it (`cgm enter memory work $$`) have them: a user who asked for `memory` gets a
    /// cgroup with `memory.max`, on v2 as on v1. The user owns that file and may change it
    /// afterwards. A point that holds processes (the user moved some up from a child) cannot
    /// enable controllers (EBUSY, the no-internal-process rule): that arrangement is the
    /// user's, and is left alone. Files the write makes in existing children are the user's
    /// ([`super::value::as_writer`]).
    fn enable_at_point(&self, c: &Caller, d: &Cgroup, plan: &Plan) -> Result<()> {
        let have = d.subtree_control().map_err(|e| from_cgroups(&e))?;
        let add: Vec<&String> = plan.want.iter().filter(|c| !have.contains(c)).collect();
        if add.is_empty() {
            return Ok(());
        }
        let names = add.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" ");
        let write = || d.enable_controllers(&add).map_err(|e| from_cgroups(&e));
        match super::value::as_writer(d, c.uid, c.gid, write) {
            Ok(()) => {
                tracing::info!("enabled {names} in the delegation point {}", d.abs_path());
                Ok(())
            }
            Err(e) if e.kind() == Kind::Busy => {
                tracing::info!(
                    "left {} as it is: it holds processes, so it cannot enable {names} for \
                     its children",
                    d.abs_path()
                );
                Ok(())
            }
            Err(e) => Err(Error::new(
                e.kind(),
                format!(
                    "cannot enable {names} in the delegation point {}: {}",
                    d.abs_path(),
                    e.message()
                ),
            )),
        }
    }

    /// The policy's limits at the delegation point, as root. A limit is set wherever its
    /// controller is delegated (v1: its hierarchy; v2: enabled on the way down, see
    /// [`Manager::plan_controllers`]); a write that fails fails the Delegate.
    fn set_limits(
        &self,
        h: &Hierarchy,
        d: &Cgroup,
        rule: &Rule,
        plan: Option<&Plan>,
    ) -> Result<()> {
        let has = |c: &str| match plan {
            Some(p) => p.want.iter().any(|x| x == c),
            None => h.controllers.iter().any(|x| x == c),
        };
        let mut writes: Vec<(&str, String)> = Vec::new();
        if h.version == Version::V2 {
            writes.push(("cgroup.max.depth", rule.max_depth.to_string()));
            writes.push(("cgroup.max.descendants", rule.max_cgroups.to_string()));
        }
        if let Some(m) = rule.memory_bytes().filter(|_| has("memory")) {
            let key = match h.version {
                Version::V1 => "memory.limit_in_bytes",
                Version::V2 => "memory.max",
            };
            writes.push((key, m.to_string()));
        }
        if let Some(p) = rule.pids_max.filter(|_| has("pids")) {
            writes.push(("pids.max", p.to_string()));
        }
        for (key, value) in writes {
            d.write(key, &value).map_err(|e| {
                let kind = from_cgroups(&e).kind();
                Error::new(
                    kind,
                    format!(
                        "set the policy's limit {key} = {value} at {}: {e}",
                        d.abs_path()
                    ),
                )
            })?;
        }
        Ok(())
    }
}

/// cgroup v2: the controllers a delegation point gets and where the daemon enables them.
#[derive(Debug, Default)]
struct Plan {
    /// The cgroups from the highest the daemon arranges down to the delegation point's parent.
    way: Vec<Cgroup>,
    /// The controllers to enable in each of them.
    want: Vec<String>,
}

/// Cgroups below `cg` (counting stops at `stop_at`) and how many levels deep they go.
fn count_descendants(cg: &Cgroup, stop_at: usize) -> (usize, usize) {
    let mut n = 0;
    let mut depth = 0;
    let base = cg.depth();
    let mut stack = vec![cg.clone()];
    while let Some(c) = stack.pop() {
        for child in c.children().unwrap_or_default() {
            n += 1;
            if let Ok(d) = c.descendant(&child) {
                depth = depth.max(d.depth() - base);
                if n >= stop_at {
                    return (n, depth);
                }
                stack.push(d);
            }
        }
    }
    (n, depth)
}
