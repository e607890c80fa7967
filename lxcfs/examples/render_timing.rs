//! Times in-process rendering of each file for the calling process (no FUSE): shows how much
//! of a read's latency is the renderer itself. `cargo run --release --example render_timing`.

use std::sync::Arc;
use std::time::Instant;

use lxcfs::switch::Virtualisation;
use lxcfs::tree::VFile;
use lxcfs::view::Views;
use lxcfs::{Caller, Options};

fn main() {
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
    let layout =
        cgroups::Layout::detect(std::path::Path::new("/proc")).unwrap_or_else(|e| panic!("{e}"));
    let pc = cgroups::ProcCgroups::read(std::path::Path::new("/proc"), me.pid)
        .unwrap_or_else(|e| panic!("{e}"));
    let cg = layout
        .cgroup_for("memory", &pc)
        .unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    for _ in 0..5000 {
        let _ = cgroups::memory::read(&cg);
    }
    println!(
        "memory::read: {:.1} us",
        t.elapsed().as_secs_f64() * 1e6 / 5000.0
    );
    let t = Instant::now();
    for _ in 0..5000 {
        let _ = std::fs::read_to_string(cg.file("memory.stat"));
    }
    println!(
        "read memory.stat: {:.1} us",
        t.elapsed().as_secs_f64() * 1e6 / 5000.0
    );
    for f in [
        VFile::Meminfo,
        VFile::Stat,
        VFile::Cpuinfo,
        VFile::Uptime,
        VFile::Diskstats,
        VFile::CpuOnline,
    ] {
        let n = 5000;
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
