//! `lxr freeze NAME` / `lxr unfreeze NAME`: the cgroup freezer (v1 `freezer.state`, v2
//! `cgroup.freeze`).

use crate::container::{check_name, State};
use crate::error::{Error, Result};
use crate::paths::Paths;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
}

/// Freeze (`true`) or thaw a running container.
pub fn freeze(paths: &Paths, name: &str, frozen: bool) -> Result<()> {
    check_name(name)?;
    let Some(s) = State::load(&paths.state(name))? else {
        return Err(Error::Usage(format!("{name} is not running")));
    };
    let (v1, v2) = if frozen {
        (("freezer.state", "FROZEN"), ("cgroup.freeze", "1"))
    } else {
        (("freezer.state", "THAWED"), ("cgroup.freeze", "0"))
    };
    if s.cgroup.cgroups.is_empty() || !crate::cgroup::set(&s.cgroup, "freezer", v1, v2)? {
        return Err(Error::Host(format!(
            "{name} has no freezer cgroup ({}); ask the admin to delegate the freezer (v1) or \
             cgroup2 hierarchy",
            s.cgroup.unconfined.as_deref().unwrap_or("not delegated")
        )));
    }
    Ok(())
}

/// Run `freeze`.
pub fn run(paths: &Paths, a: Args) -> Result<i32> {
    freeze(paths, &a.name, true).map(|()| 0)
}

/// Run `unfreeze`.
pub fn run_thaw(paths: &Paths, a: Args) -> Result<i32> {
    freeze(paths, &a.name, false).map(|()| 0)
}
