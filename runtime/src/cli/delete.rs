//! `lxr delete [--force] NAME`: the rootfs belongs to the container's root, so it is removed
//! from inside the user namespace; then the directory itself.

use crate::container::{check_name, State};
use crate::error::{Context, Error, Result};
use crate::idmap::IdMaps;
use crate::lock::Lock;
use crate::paths::Paths;
use crate::userns::remove_as_root;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
    /// Stop it first if it runs.
    #[arg(short, long)]
    force: bool,
}

/// Remove a container's directory tree.
pub fn remove_tree(paths: &Paths, name: &str, maps: &IdMaps) -> Result<()> {
    let dir = paths.container(name);
    remove_as_root(maps, &dir.join("rootfs"))?;
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).ctx(|| format!("remove {}", dir.display())),
    }
    let _ = std::fs::remove_dir_all(paths.state(name));
    Ok(())
}

/// Run.
pub fn run(paths: &Paths, a: Args) -> Result<i32> {
    check_name(&a.name)?;
    // Waits for a create or start in progress (e.g. the monitor of a killed `lxr launch`).
    let _lock = Lock::container(paths, &a.name)?;
    if !paths.container(&a.name).exists() {
        return Err(Error::NotFound(format!("no container {}", a.name)));
    }
    if State::load(&paths.state(&a.name))?.is_some() {
        if !a.force {
            return Err(Error::Usage(format!(
                "{} is running: stop it first, or use delete --force",
                a.name
            )));
        }
        crate::cli::stop::stop(paths, &a.name, true, std::time::Duration::from_secs(10))?;
    }
    State::reap_stale(&paths.state(&a.name))?;
    remove_tree(paths, &a.name, &IdMaps::for_current_user()?)?;
    let _ = std::fs::remove_file(Lock::container_path(paths, &a.name));
    Ok(0)
}
