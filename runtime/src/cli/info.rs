//! `lxr info NAME`: state, pid, cgroups, limits, usage, and whether lxcfs and a delegated
//! cgroup are in use.

use crate::container::{check_name, Config, State};
use crate::error::{Error, Result};
use crate::paths::Paths;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
}

/// Run.
pub fn run(paths: &Paths, a: Args) -> Result<i32> {
    check_name(&a.name)?;
    let dir = paths.container(&a.name);
    if !dir.exists() {
        return Err(Error::NotFound(format!("no container {}", a.name)));
    }
    let cfg = Config::load(&dir.join("config.yaml"))?;
    println!("Name: {}", a.name);
    println!("Image: {}", cfg.image);
    let st = State::load(&paths.state(&a.name))?;
    match &st {
        None => {
            println!("Status: STOPPED");
            if let Some(last) = crate::launch::monitor::last_exit(&paths.state(&a.name)) {
                println!("Last exit: init {}", last.trim());
            }
        }
        Some(s) => {
            println!("Status: RUNNING");
            println!("PID: {}", s.init_pid);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            println!("Uptime: {}s", now.saturating_sub(s.started));
            if let Some(last) = crate::launch::monitor::last_exit(&paths.state(&a.name)) {
                println!("Previous run: init {}", last.trim());
            }
            println!("lxcfs: {}", if s.lxcfs { "yes" } else { "no" });
            match &s.cgroup.unconfined {
                Some(why) => println!("Cgroup: unconfined ({why})"),
                None => {
                    println!("Cgroup: delegated by cgmanager");
                    for (h, p) in &s.cgroup.cgroups {
                        println!("  {h}: {p}");
                    }
                }
            }
            let get = |c: &str, v1: &str, v2: &str| crate::cgroup::get(&s.cgroup, c, v1, v2);
            if let Some(m) = get("memory", "memory.usage_in_bytes", "memory.current") {
                println!("Memory usage: {} bytes", m.trim());
            }
            if let Some(p) = get("pids", "pids.current", "pids.current") {
                println!("Processes: {}", p.trim());
            }
            if let Some(f) = get("freezer", "freezer.state", "cgroup.freeze") {
                let frozen = matches!(f.trim(), "FROZEN" | "1");
                println!("Frozen: {}", if frozen { "yes" } else { "no" });
            }
        }
    }
    if !cfg.keys.is_empty() {
        println!("Config:");
        for (k, v) in &cfg.keys {
            println!("  {k}: {v}");
        }
    }
    Ok(0)
}
