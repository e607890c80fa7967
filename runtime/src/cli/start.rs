//! `lxr start NAME`.

use crate::container::{check_name, State};
use crate::error::{Error, Result};
use crate::idmap::IdMaps;
use crate::launch::{self, Spec};
use crate::lock::Lock;
use crate::paths::Paths;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
}

/// Start a created container; the caller holds its [`Lock`].
pub fn start(paths: &Paths, name: &str, lock: &Lock) -> Result<State> {
    check_name(name)?;
    let dir = paths.container(name);
    if !dir.join("rootfs").is_dir() {
        return Err(Error::NotFound(format!(
            "no container {name} (lxr list shows them)"
        )));
    }
    paths.ensure()?;
    let state_dir = paths.state(name);
    State::reap_stale(&state_dir)?;
    if let Some(s) = State::load(&state_dir)? {
        return Err(Error::Usage(format!(
            "{name} is already running (pid {})",
            s.init_pid
        )));
    }
    // $LXR_LXCFS overrides where lxcfs is looked for (tests mount one elsewhere).
    let lxcfs = std::env::var_os("LXR_LXCFS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(crate::LXCFS_MOUNT));
    let lxcfs = lxcfs.as_path();
    let spec = Spec {
        name: name.to_string(),
        rootfs: dir.join("rootfs"),
        maps: IdMaps::for_current_user()?,
        state_dir,
        lxcfs: launch::mounts::lxcfs_mounted(lxcfs).then(|| lxcfs.to_path_buf()),
        keys: crate::container::Config::load(&dir.join("config.yaml"))?.keys,
        lock_fd: Some(lock.raw_fd()),
    };
    launch::start(&spec)
}

/// Run.
pub fn run(paths: &Paths, a: Args) -> Result<i32> {
    check_name(&a.name)?;
    let lock = Lock::container(paths, &a.name)?;
    let s = start(paths, &a.name, &lock)?;
    println!("Started {} (pid {})", a.name, s.init_pid);
    if let Some(why) = &s.cgroup.unconfined {
        eprintln!("lxr: warning: {} runs unconfined: {why}", a.name);
    }
    Ok(0)
}
