//! Times in-process rendering of each file for the calling process (no FUSE): shows how much
//! of a read's latency is the renderer itself. `cargo run --release --example render_timing`.
//!
//! `render_timing [FILE [N]]` renders only FILE (meminfo, stat, cpuinfo, uptime, loadavg,
//! diskstats, swaps, online) N times (default 5000) — for instruction counts per rendering
//! under `valgrind --tool=callgrind` (run with two values of N and divide the difference)
//! and syscall counts under `strace -c -f`.

use std::sync::Arc;
use std::time::Instant;

use lxcfs::switch::Virtualisation;
use lxcfs::tree::VFile;
use lxcfs::view::Views;
use lxcfs::{Caller, Options};

fn file_named(name: &str) -> Option<VFile> {
    Some(match name {
        "meminfo" => VFile::Meminfo,
        "stat" => VFile::Stat,
        "cpuinfo" => VFile::Cpuinfo,
        "uptime" => VFile::Uptime,
        "loadavg" => VFile::Loadavg,
        "diskstats" => VFile::Diskstats,
        "swaps" => VFile::Swaps,
        "online" => VFile::CpuOnline,
        _ => return None,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let views = match Views::new(
        &Options::default(),
        Arc::new(Virtualisation::private()),
        None,
    ) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("render_timing: {e}");
            std::process::exit(1);
        }
    };
    let me = Caller {
        pid: std::process::id(),
        uid: 0,
        gid: 0,
    };
    if let Some(name) = args.first() {
        let Some(f) = file_named(name) else {
            eprintln!("render_timing: unknown file {name}");
            std::process::exit(2);
        };
        let t = Instant::now();
        for _ in 0..n {
            if let Err(e) = views.render(f, me) {
                eprintln!("{f:?}: {e}");
                std::process::exit(1);
            }
        }
        println!(
            "{f:?}: {:.1} us",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
        return;
    }
    let layout =
        cgroups::Layout::detect(std::path::Path::new("/proc")).unwrap_or_else(|e| panic!("{e}"));
    let pc = cgroups::ProcCgroups::read(std::path::Path::new("/proc"), me.pid)
        .unwrap_or_else(|e| panic!("{e}"));
    let cg = layout
        .cgroup_for("memory", &pc)
        .unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    for _ in 0..n {
        let _ = cgroups::memory::read(&cg);
    }
    println!(
        "memory::read: {:.1} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        let _ = std::fs::read_to_string(cg.file("memory.stat"));
    }
    println!(
        "read memory.stat: {:.1} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    for f in [
        VFile::Meminfo,
        VFile::Stat,
        VFile::Cpuinfo,
        VFile::Uptime,
        VFile::Loadavg,
        VFile::Diskstats,
        VFile::Swaps,
        VFile::CpuOnline,
    ] {
        let t = Instant::now();
        for _ in 0..n {
            if let Err(e) = views.render(f, me) {
                eprintln!("{f:?}: {e}");
                break;
            }
        }
        println!(
            "{f:?}: {:.1} us",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}
