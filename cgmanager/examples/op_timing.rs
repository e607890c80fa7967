//! Where a GetValue's time goes inside the daemon (no D-Bus): identify the caller, then read a
//! file of a cgroup below our own. `cargo run --release -p cgmanager --example op_timing -- CGROUP KEY`
//! (CGROUP relative to this process's memory cgroup).

use std::time::Instant;

use cgmanager::caller::{Caller, HostNs, Peer};
use cgmanager::{Config, Manager};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (cg, key) = match (args.get(1), args.get(2)) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            eprintln!("usage: op_timing CGROUP KEY");
            std::process::exit(2);
        }
    };
    let proc_root = std::path::Path::new("/proc");
    let run = || -> Result<(), String> {
        let layout = cgroups::Layout::detect(proc_root).map_err(|e| e.to_string())?;
        let host = HostNs::detect(proc_root).map_err(|e| e.to_string())?;
        let mgr = Manager::new(host.clone(), layout, Config::default(), Default::default())
            .map_err(|e| e.to_string())?;
        let pid = std::env::var("PID")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(std::process::id());
        let peer = Peer::from_bus(proc_root, pid, nix::unistd::geteuid().as_raw(), None);
        let n = 20000u32;
        let t = Instant::now();
        for _ in 0..n {
            Caller::load(&peer, &host).map_err(|e| e.to_string())?;
        }
        let load = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            cgroups::process::ns_inode(proc_root, pid, "user").map_err(|e| e.to_string())?;
        }
        let ns = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            cgroups::ProcCgroups::read(proc_root, pid).map_err(|e| e.to_string())?;
        }
        let cgs = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            let _ = peer.alive();
        }
        let alive = t.elapsed() / n;
        println!("ns_inode {ns:?}  /proc/pid/cgroup {cgs:?}  pidfd alive {alive:?}");
        let c = Caller::load(&peer, &host).map_err(|e| e.to_string())?;
        let t = Instant::now();
        for _ in 0..n {
            mgr.get_value(&c, "memory", &cg, &key)
                .map_err(|e| e.to_string())?;
        }
        let op = t.elapsed() / n;
        println!("Caller::load {load:?}  get_value {op:?}");
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("op_timing: {e}");
        std::process::exit(1);
    }
}
