//! `lxr info NAME` ([`Containers::status`]): state, pid, cgroups, limits, usage, how the last
//! run ended, whether lxcfs and a delegated cgroup are in use, the network stack, interfaces,
//! addresses and forwards.

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
    println!(
        "Type: container{}",
        if st.config.ephemeral {
            " (ephemeral)"
        } else {
            ""
        }
    );
    println!("Image: {}", c.image_label(&st.config.image));
    if let Ok((storage, used)) = c.storage(&a.name) {
        println!("Storage: {}", storage.describe());
        if let Some(u) = used {
            println!(
                "Disk usage: {} ({u} bytes)",
                crate::storage::usage::human(u)
            );
        }
    }
    let snaps = c.snapshot_names(&a.name);
    if !snaps.is_empty() {
        println!("Snapshots: {}", snaps.join(", "));
    }
    match &st.running {
        None => {
            println!("Status: STOPPED");
            if let Some(last) = &st.last_exit {
                println!("Last exit: init {last}");
            }
        }
        Some(s) => {
            // As Incus (and `list`): a frozen container's status is FROZEN.
            let frozen = st.usage.frozen == Some(true);
            println!("Status: {}", if frozen { "FROZEN" } else { "RUNNING" });
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
            match &s.net {
                None => println!("Network: none (lo only)"),
                Some(n) => {
                    print!("Network: {} (helper pid {}", n.backend.name(), n.helper_pid);
                    if n.restarts > 0 {
                        print!(", restarted {} times", n.restarts);
                    }
                    println!(")");
                }
            }
            if !st.ifaces.is_empty() {
                println!("Interfaces:");
                for i in &st.ifaces {
                    let addrs: Vec<String> =
                        i.v4.iter()
                            .map(|a| a.to_string())
                            .chain(i.v6.iter().map(|a| a.to_string()))
                            .collect();
                    println!("  {}: {}", i.name, addrs.join(" "));
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
    let proxies = crate::net::proxy::all(&st.config.flat());
    if !proxies.is_empty() {
        println!("Forwards:");
        for p in &proxies {
            println!("  {}", p.describe());
        }
    }
    let disks: Vec<_> = st
        .config
        .devices
        .iter()
        .filter(|(_, o)| o.get("type").map(String::as_str) == Some("disk"))
        .collect();
    if !disks.is_empty() {
        println!("Disks:");
        for (d, o) in disks {
            println!(
                "  {}",
                crate::text::line(&crate::container::devices::describe(d, o))
            );
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
