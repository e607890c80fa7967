//! The container's cgroup, obtained from cgmanager over D-Bus: the user's delegated subtree
//! (`Delegate`), a cgroup `lxr/<name>` in it with the configured limits, and the container's
//! first process moved in by the daemon (`Enter`). Without a reachable cgmanager or a
//! delegation the container runs unconfined and says so.
//!
//! Where cgmanager is: `$LXR_CGMANAGER` (`unix:path=…` for its socket, `bus:ADDRESS` for a
//! bus), else `/run/cgmanager/sock`. A command talks to it over one connection, [`Cgm`], opened
//! when first needed (a helper namespace, being another process, has its own).

use std::collections::BTreeMap;

use cgmanager_dbus::{connect, DelegationProxy, ManagerProxy, Transport};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits;

/// Where the container's processes live, per hierarchy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// (hierarchy as cgmanager names it, absolute cgroup path).
    pub cgroups: Vec<(String, String)>,
    /// Why the container is not confined, when it is not.
    pub unconfined: Option<String>,
    /// How its first process got there (`lxr info` says; none for an unconfined container or
    /// a state written by an older lxr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Entry>,
}

/// How a container's first process entered its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Entry {
    /// Started there by the monitor with `clone3(CLONE_INTO_CGROUP)` (cgroup v2; see
    /// [`crate::launch::clone`]).
    Clone3,
    /// Moved there by cgmanager (`Enter`, a `cgroup.procs` write) after it started.
    Cgmanager,
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Entry::Clone3 => "clone3 (CLONE_INTO_CGROUP)",
            Entry::Cgmanager => "moved by cgmanager",
        })
    }
}

/// How to reach cgmanager.
pub fn transport() -> Transport {
    match std::env::var("LXR_CGMANAGER") {
        Ok(v) if v.starts_with("bus:") => Transport::Bus(Some(v["bus:".len()..].to_string())),
        Ok(v) if !v.is_empty() => Transport::Peer(v),
        _ => Transport::Peer(cgmanager_dbus::DEFAULT_SOCKET_PATH.to_string()),
    }
}

fn rt() -> Result<tokio::runtime::Runtime> {
    let build = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    // A throwaway first runtime: what it leaves open is tokio's, for the whole process.
    crate::fds::process_wide(|| drop(build()));
    build().map_err(|e| Error::Setup(format!("tokio: {e}")))
}

/// A connection to cgmanager with both proxies, driven by a private single-threaded runtime
/// (lxr forks, so it never starts runtime threads of its own).
struct Client {
    rt: tokio::runtime::Runtime,
    m: ManagerProxy<'static>,
    d: DelegationProxy<'static>,
}

impl Client {
    fn open() -> Result<Client> {
        let rt = rt()?;
        let t = transport();
        let (m, d) = rt.block_on(async {
            let conn = connect(&t)
                .await
                .map_err(|e| Error::Host(format!("no cgmanager at {t} ({e})")))?;
            let m = ManagerProxy::new(&conn)
                .await
                .map_err(|e| dbus("proxy", e.into()))?;
            let d = DelegationProxy::new(&conn)
                .await
                .map_err(|e| dbus("proxy", e.into()))?;
            Ok::<_, Error>((m, d))
        })?;
        Ok(Client { rt, m, d })
    }

    fn remove(&self, p: &Placement) -> Result<()> {
        self.rt.block_on(async {
            for (h, path) in &p.cgroups {
                let mut tries = 0;
                loop {
                    match self.m.remove(h, path, 1).await {
                        Ok(_) => break,
                        Err(cgmanager_dbus::Error::Busy(_)) if tries < 100 => {
                            tries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                        Err(e) => return Err(dbus(&format!("remove {h}:{path}"), e)),
                    }
                }
            }
            Ok(())
        })
    }
}

/// Remove a container's cgroups over a connection of its own ([`Cgm::remove`]).
pub fn remove(p: &Placement) -> Result<()> {
    Cgm::new().remove(p)
}

fn dbus(what: &str, e: cgmanager_dbus::Error) -> Error {
    Error::Setup(format!("{what}: {}: {}", e.kind(), e.message()))
}

/// The container's cgroups, created with their limits, waiting for its first process
/// ([`Prepared::enter`]). Split from the move so the slow part of a move — the kernel's wait
/// for an RCU grace period on the first `cgroup.procs` write — can overlap other work.
pub struct Prepared {
    client: Option<Client>,
    placement: Placement,
    rel: String,
}

/// Create the container's cgroups with its limits. An unconfined placement when there is no
/// cgmanager or no delegation (an error if limits were asked for). Anything created is
/// removed again if a later step fails.
pub fn prepare(name: &str, keys: &BTreeMap<String, String>) -> Result<Prepared> {
    let wants_limits = keys.keys().any(|k| k.starts_with("limits."));
    let rel = format!("lxr/{name}");
    let c = match Client::open() {
        Ok(c) => c,
        Err(e) => {
            return Ok(Prepared {
                client: None,
                placement: unconfined(e.to_string(), wants_limits)?,
                rel,
            })
        }
    };
    let ds = match c.rt.block_on(c.d.delegate("all")) {
        Ok(ds) => ds,
        Err(e) => {
            return Ok(Prepared {
                client: None,
                placement: unconfined(
                    format!("no delegated cgroup ({}: {})", e.kind(), e.message()),
                    wants_limits,
                )?,
                rel,
            })
        }
    };
    let mut out = Placement::default();
    let made = c.rt.block_on(async {
        for (h, dpath) in &ds {
            let path = format!("{dpath}/{rel}");
            c.m.create(h, &path)
                .await
                .map_err(|e| dbus(&format!("create {h}:{path}"), e))?;
            if h == "unified" {
                enable_controllers(&c.m, h, dpath).await;
                // The leaf `lxr exec` joins once the container's init has enabled controllers
                // in its top cgroup, made now, while that is the user's: later it belongs to
                // the container's root (`hand_over`), and the user could not make it there.
                let leaf = format!("{path}/{EXEC_LEAF}");
                c.m.create(h, &leaf)
                    .await
                    .map_err(|e| dbus(&format!("create {h}:{leaf}"), e))?;
            }
            out.cgroups.push((h.clone(), path));
        }
        apply_limits(&c.m, &out, keys).await
    });
    if let Err(e) = made {
        let _ = c.remove(&out);
        return Err(e);
    }
    Ok(Prepared {
        client: Some(c),
        placement: out,
        rel,
    })
}

impl Prepared {
    /// Give the cgroups up (the start failed before anything entered them).
    pub fn abandon(self) {
        if let Some(c) = &self.client {
            let _ = c.remove(&self.placement);
        }
    }

    /// The container's cgroup2 directory, opened (`O_PATH`) for `clone3(CLONE_INTO_CGROUP)`:
    /// only where cgroup2 is the container's one hierarchy (the clone places a process in the
    /// v2 hierarchy only; on a v1 or hybrid placement cgmanager's move is needed anyway), and
    /// where this process sees the hierarchy's root mounted (it opens the directory by its
    /// absolute path). None otherwise, or when the tests turn the feature off.
    pub fn clone_target(&self) -> Option<std::os::fd::OwnedFd> {
        if self.client.is_none() || !crate::kernel::Compat::from_env().clone_into_cgroup {
            return None;
        }
        let [(h, path)] = self.placement.cgroups.as_slice() else {
            tracing::debug!("a v1 or hybrid placement: cgmanager moves the container");
            return None;
        };
        if h != "unified" {
            return None;
        }
        let dir = v2_dir(path)?;
        match nix::fcntl::open(
            &dir,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::debug!("open {}: {e}; cgmanager moves the container", dir.display());
                None
            }
        }
    }

    /// The placement of a container whose first process the kernel started in its cgroup
    /// (`clone3(CLONE_INTO_CGROUP)` into [`Prepared::clone_target`]): nothing to move.
    pub fn cloned_in(mut self) -> Placement {
        self.placement.entry = Some(Entry::Clone3);
        self.placement
    }

    /// Move `pid` (a host pid of the user's) into the cgroups; the placement.
    pub fn enter(mut self, pid: u32) -> Result<Placement> {
        let Some(c) = self.client else {
            return Ok(self.placement);
        };
        self.placement.entry = Some(Entry::Cgmanager);
        let rel = &self.rel;
        let entered = c.rt.block_on(async {
            c.d.enter("all", rel, pid as i32)
                .await
                .map_err(|e| dbus(&format!("move the container into {rel}"), e))
        });
        if let Err(e) = entered {
            let _ = c.remove(&self.placement);
            return Err(e);
        }
        Ok(self.placement)
    }
}

/// Where this process sees the cgroup2 cgroup `path` (absolute from the hierarchy's root, as
/// cgmanager names it): below a mount of the hierarchy's root. None without one (a mount
/// namespace with another view), to be reached through cgmanager instead.
fn v2_dir(path: &str) -> Option<std::path::PathBuf> {
    let layout = cgroups::layout::Layout::detect(std::path::Path::new("/proc")).ok()?;
    let v2 = layout.unified().filter(|u| u.mount_root == "/")?;
    Some(v2.mount_point.join(path.trim_start_matches('/')))
}

/// Whether the freezer holds the cgroups of `p`, read where this process sees them (the state
/// files are anyone's to read) with the hierarchy [`Cgm::get`] would ask, so that a stop does
/// not need cgmanager for a container that is not frozen. `None` where it cannot tell here.
pub fn frozen_here(p: &Placement) -> Option<bool> {
    let layout = cgroups::layout::Layout::detect(std::path::Path::new("/proc")).ok()?;
    for (h, path) in &p.cgroups {
        let (hierarchy, file) = if h == "unified" {
            (layout.unified()?, "cgroup.freeze")
        } else if h.split(',').any(|c| c == "freezer") {
            (layout.hierarchy_for("freezer")?, "freezer.state")
        } else {
            continue;
        };
        if hierarchy.mount_root != "/" {
            return None;
        }
        let dir = hierarchy.mount_point.join(path.trim_start_matches('/'));
        match std::fs::read_to_string(dir.join(file)) {
            Ok(v) => return Some(matches!(v.trim(), "FROZEN" | "FREEZING" | "1")),
            // A cgroup2 cgroup without the file (the root): the next hierarchy, as `get`.
            Err(_) if h == "unified" => continue,
            Err(_) => return None,
        }
    }
    Some(false)
}

/// The cgroup2 controllers a container gets: its limits', and what an init such as systemd
/// hands on to its own units.
const V2_CONTROLLERS: &[&str] = &["cpuset", "cpu", "io", "memory", "pids"];

/// On cgroup2 a controller reaches a cgroup only when its parent enables it in
/// `cgroup.subtree_control`: enable what the delegation offers ([`V2_CONTROLLERS`] that its
/// `cgroup.controllers` lists) at the delegation point and at `lxr/`, so `lxr/<name>` has
/// `memory.max`, `cpu.max`, … and its init can enable them further down. Best effort: a
/// controller that cannot be enabled makes the limit that needs it fail, with its own error.
async fn enable_controllers(m: &ManagerProxy<'_>, h: &str, delegation: &str) {
    for parent in [delegation.to_string(), format!("{delegation}/lxr")] {
        let offered = m
            .get_value(h, &parent, "cgroup.controllers")
            .await
            .unwrap_or_default();
        let enabled = m
            .get_value(h, &parent, "cgroup.subtree_control")
            .await
            .unwrap_or_default();
        let missing: Vec<String> = V2_CONTROLLERS
            .iter()
            .filter(|c| offered.split_whitespace().any(|o| o == **c))
            .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            let _ = m
                .set_value(h, &parent, "cgroup.subtree_control", &missing.join(" "))
                .await;
        }
    }
}

fn unconfined(why: String, wants_limits: bool) -> Result<Placement> {
    if wants_limits {
        return Err(Error::Host(format!(
            "{why}; limits need a cgroup delegated by cgmanager (see cgmanager/README.md), or \
             remove the limits.* keys"
        )));
    }
    Ok(Placement {
        cgroups: Vec::new(),
        unconfined: Some(why),
        entry: None,
    })
}

async fn apply_limits(
    m: &ManagerProxy<'_>,
    p: &Placement,
    keys: &BTreeMap<String, String>,
) -> Result<()> {
    for (k, v) in keys.iter().filter(|(k, _)| k.starts_with("limits.")) {
        // The CPUs the container may be given: v1's cpuset.cpus, or on cgroup2 the effective
        // set (`cpuset.cpus` there is empty until someone sets it).
        let cpuset = p
            .cgroups
            .iter()
            .find(|(h, _)| h.split(',').any(|c| c == "cpuset"))
            .map(|(h, path)| (h, path, "cpuset.cpus"))
            .or_else(|| {
                p.cgroups
                    .iter()
                    .find(|(h, _)| h == "unified")
                    .map(|(h, path)| (h, path, "cpuset.cpus.effective"))
            });
        let available = match cpuset {
            Some((h, path, file)) => m.get_value(h, path, file).await.unwrap_or_default(),
            None => String::new(),
        };
        let mut applied = false;
        for w in limits::writes(k, v, &available)? {
            for (h, path) in &p.cgroups {
                let (file, value) = if h == "unified" {
                    (w.v2, &w.v2_value)
                } else if h.split(',').any(|c| c == w.controller) {
                    (w.v1, &w.v1_value)
                } else {
                    continue;
                };
                match m.set_value(h, path, file, value).await {
                    Ok(()) => applied = true,
                    // The cgroup2 hierarchy may not have that controller enabled.
                    Err(cgmanager_dbus::Error::NotFound(_)) if h == "unified" => {}
                    Err(e) => return Err(dbus(&format!("{k}={v}: write {file}"), e)),
                }
            }
        }
        if !applied {
            return Err(Error::Host(format!(
                "{k}={v}: no delegated hierarchy has that controller"
            )));
        }
    }
    Ok(())
}

/// The leaf an `lxr exec`'d process joins where cgroup v2 keeps processes out of the
/// container's top cgroup (as LXC's `.lxc`). Made with the container's cgroup, as the user's
/// (found in the v2 guest, issue 18: made at the first `exec` into a systemd container, it was
/// refused — the top cgroup belongs to the container's root by then).
pub const EXEC_LEAF: &str = ".lxr";

/// One connection to cgmanager for a whole command, opened when first needed; a command that
/// never needs it (every container stopped, say) never connects.
#[derive(Default)]
pub struct Cgm {
    client: std::cell::OnceCell<std::result::Result<Client, String>>,
}

impl Cgm {
    /// Not connected yet.
    pub fn new() -> Cgm {
        Cgm::default()
    }

    fn client(&self) -> Result<&Client> {
        self.client
            .get_or_init(|| Client::open().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Host(e.clone()))
    }

    /// Apply `limits.*` keys to a running container's cgroups.
    pub fn apply(&self, p: &Placement, keys: &BTreeMap<String, String>) -> Result<()> {
        if p.cgroups.is_empty() {
            return Err(Error::Host(format!(
                "the container has no cgroup ({}); limits cannot be applied",
                p.unconfined.as_deref().unwrap_or("unconfined")
            )));
        }
        let c = self.client()?;
        c.rt.block_on(apply_limits(&c.m, p, keys))
    }

    /// Write one file in the hierarchy carrying `controller` (`v1` name there, `v2` on
    /// cgroup2). Returns false if no hierarchy of the container has the controller.
    pub fn set(
        &self,
        p: &Placement,
        controller: &str,
        v1: (&str, &str),
        v2: (&str, &str),
    ) -> Result<bool> {
        if p.cgroups.is_empty() {
            return Ok(false);
        }
        let c = self.client()?;
        c.rt.block_on(async {
            for (h, path) in &p.cgroups {
                let (file, value) = if h.split(',').any(|c| c == controller) {
                    v1
                } else if h == "unified" {
                    v2
                } else {
                    continue;
                };
                match c.m.set_value(h, path, file, value).await {
                    Ok(()) => return Ok(true),
                    Err(cgmanager_dbus::Error::NotFound(_)) if h == "unified" => {}
                    Err(e) => return Err(dbus(&format!("write {file}"), e)),
                }
            }
            Ok(false)
        })
    }

    /// Read one file of the container's cgroup in the hierarchy carrying `controller`.
    pub fn get(&self, p: &Placement, controller: &str, v1: &str, v2: &str) -> Option<String> {
        if p.cgroups.is_empty() {
            return None;
        }
        let c = self.client().ok()?;
        c.rt.block_on(async {
            for (h, path) in &p.cgroups {
                let file = if h == "unified" {
                    v2
                } else if h.split(',').any(|c| c == controller) {
                    v1
                } else {
                    continue;
                };
                if let Ok(v) = c.m.get_value(h, path, file).await {
                    return Some(v);
                }
            }
            None
        })
    }

    /// Move `pid` (one of the user's processes) into the running container's cgroups: its top
    /// cgroup in each hierarchy, or — where that is refused as Busy, cgroup v2's
    /// no-internal-process rule once an init such as systemd has enabled controllers for its
    /// own children there — the leaf [`EXEC_LEAF`] below it.
    pub fn enter(&self, name: &str, pid: u32) -> Result<()> {
        let c = self.client()?;
        let top = format!("lxr/{name}");
        c.rt.block_on(async {
            match c.d.enter("all", &top, pid as i32).await {
                Ok(()) => return Ok(()),
                Err(cgmanager_dbus::Error::Busy(_)) => {}
                Err(e) => return Err(dbus("join the container's cgroup", e)),
            }
            let ds =
                c.d.delegate("all")
                    .await
                    .map_err(|e| dbus("ask cgmanager for the delegation", e))?;
            let leaf = format!("{top}/{EXEC_LEAF}");
            for (h, _) in ds {
                match c.d.enter(&h, &top, pid as i32).await {
                    Ok(()) => {}
                    Err(cgmanager_dbus::Error::Busy(_)) => {
                        c.d.enter(&h, &leaf, pid as i32)
                            .await
                            .map_err(|e| dbus(&format!("join {h}:{leaf}"), e))?
                    }
                    Err(e) => return Err(dbus(&format!("join {h}:{top}"), e)),
                }
            }
            Ok(())
        })
    }

    /// Kill every process of the container's cgroup tree at once with cgroup2's `cgroup.kill`
    /// (Linux 5.14): unlike signals sent process by process, no fork can outrun it. Ok(false)
    /// where it cannot be used — no cgroup2 hierarchy in the placement (v1), a kernel without
    /// the file (`NotFound`), the tests turning it off — and the caller falls back to signals.
    pub fn kill(&self, p: &Placement) -> Result<bool> {
        if !crate::kernel::Compat::from_env().cgroup_kill {
            tracing::debug!("cgroup.kill turned off (LXR_TEST_WITHOUT)");
            return Ok(false);
        }
        let Some((h, path)) = p.cgroups.iter().find(|(h, _)| h == "unified") else {
            tracing::debug!("no cgroup2 hierarchy: no cgroup.kill");
            return Ok(false);
        };
        // Directly where this process sees the hierarchy: the file is the user's (cgmanager
        // made the cgroup for it; the hand-over to the container's root leaves `cgroup.kill`,
        // not a delegation file, with the user), and a stop then needs no cgmanager connection.
        if let Some(dir) = v2_dir(path) {
            match std::fs::write(dir.join("cgroup.kill"), "1") {
                Ok(()) => {
                    tracing::debug!("cgroup.kill written in {}", dir.display());
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.is_dir() => {
                    tracing::debug!("no cgroup.kill in {} (Linux < 5.14)", dir.display());
                    return Ok(false);
                }
                Err(e) => {
                    tracing::debug!("write {}/cgroup.kill: {e}; asking cgmanager", dir.display())
                }
            }
        }
        let c = self.client()?;
        match c.rt.block_on(c.m.set_value(h, path, "cgroup.kill", "1")) {
            Ok(()) => {
                tracing::debug!("cgroup.kill written in {h}:{path} by cgmanager");
                Ok(true)
            }
            Err(cgmanager_dbus::Error::NotFound(m)) => {
                tracing::debug!("no cgroup.kill in {h}:{path} (Linux < 5.14?): {m}");
                Ok(false)
            }
            Err(e) => Err(dbus(&format!("write {h}:{path}/cgroup.kill"), e)),
        }
    }

    /// Remove the container's cgroups (after its init exited). Processes of the container
    /// may still be on their way out — init's parent, the intermediate child, exits just after
    /// init — so a busy cgroup is retried for a moment.
    pub fn remove(&self, p: &Placement) -> Result<()> {
        if p.cgroups.is_empty() {
            return Ok(());
        }
        self.client()?.remove(p)
    }
}

/// Give the container's cgroups to its root (container uid and gid 0), so that an init such as
/// systemd can make and own its own cgroups below them. Chown takes privilege over both uids, so
/// it is asked from root of a helper namespace that is the user (who owns the cgroups, and
/// whose delegation cgmanager lets it reach from whatever cgroup lxr runs in) and maps the
/// container's root as its id 1 (which the daemon translates into the host's first subordinate
/// id).
pub fn hand_over(p: &Placement, maps: &crate::idmap::IdMaps) -> Result<()> {
    if p.cgroups.is_empty() {
        return Ok(());
    }
    crate::userns::run_as_root(maps, crate::idmap::Ids::UserAsRoot, || {
        let c = Client::open()?;
        c.rt.block_on(async {
            for (h, path) in &p.cgroups {
                c.m.chown(h, path, 1, 1)
                    .await
                    .map_err(|e| dbus(&format!("give {h}:{path} to the container's root"), e))?;
            }
            Ok(())
        })
    })
}
