//! `lxr info NAME` ([`Containers::status`]): state, pid, cgroups, limits, usage, how the last
//! run ended, and whether lxcfs and a delegated cgroup are in use.

use crate::error::Result;
use crate::lifecycle::Containers;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let st = c.status(&a.name, true)?;
    println!("Name: {}", st.name);
    println!("Image: {}", st.config.image);
    match &st.running {
        None => {
            println!("Status: STOPPED");
            if let Some(last) = &st.last_exit {
                println!("Last exit: init {last}");
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
            if let Some(last) = &st.last_exit {
                println!("Previous run: init {last}");
            }
            println!("lxcfs: {}", if s.lxcfs { "yes" } else { "no" });
            match &s.cgroup.unconfined {
                Some(why) => println!("Cgroup: unconfined ({why})"),
                None => {
                    println!("Cgroup: delegated by cgmanager");
                    if let Some(e) = s.cgroup.entry {
                        println!("Cgroup entry: {e}");
                    }
                    for (h, p) in &s.cgroup.cgroups {
                        println!("  {h}: {p}");
                    }
                }
            }
            if let Some(m) = st.usage.memory {
                println!("Memory usage: {m} bytes");
            }
            if let Some(p) = st.usage.processes {
                println!("Processes: {p}");
            }
            if let Some(f) = st.usage.frozen {
                println!("Frozen: {}", if f { "yes" } else { "no" });
            }
        }
    }
    if !st.config.keys.is_empty() {
        println!("Config:");
        for (k, v) in &st.config.keys {
            println!("  {k}: {v}");
        }
    }
    Ok(0)
}
