//! A container's reader for the lxcfs resilience tests: reads `proc/meminfo`, `proc/stat`,
//! `proc/cpuinfo` and the passed-through `sys/devices/system/cpu/possible` below a mount in a
//! tight loop until a stop file appears, checking every read succeeds and that meminfo shows
//! the container's own limit, and timing each read; then prints
//! `reads=N fails=F wrong=W max_ms=M first_error=…`.
//!
//! With `--hold` it opens the files once and keeps those descriptors for its whole life,
//! reading each from offset 0 every round (so a descriptor opened through one daemon
//! generation is read through the next ones); otherwise every read opens the file afresh.
//! With `--pause-ms=N` it sleeps N ms before each round (the v2 guest's readers: under TCG,
//! eight tight loops leave nothing of the guest's two CPUs to anything else); with
//! `--ready=FILE` it creates FILE once its first round is done (a test then knows it reads).
//!
//! Usage: lxcfs-reader MOUNT EXPECTED_MEMTOTAL_KB STOPFILE [--hold] [--pause-ms=N] [--ready=FILE]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FILES: [&str; 4] = [
    "proc/meminfo",
    "proc/stat",
    "proc/cpuinfo",
    "sys/devices/system/cpu/possible",
];

/// One read of `path` from offset 0: through `held` if given, else by opening it.
fn read(path: &Path, held: Option<&File>) -> std::io::Result<String> {
    let Some(f) = held else {
        return std::fs::read_to_string(path);
    };
    let mut buf = vec![0u8; 1 << 20];
    let n = f.read_at(&mut buf, 0)?;
    buf.truncate(n);
    String::from_utf8(buf).map_err(std::io::Error::other)
}

fn memtotal(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix("MemTotal:")?
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mnt), Some(expected), Some(stop)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!(
            "usage: lxcfs-reader MOUNT EXPECTED_MEMTOTAL_KB STOPFILE [--hold] [--pause-ms=N] \
             [--ready=FILE]"
        );
        std::process::exit(2);
    };
    let hold = args.iter().skip(4).any(|a| a == "--hold");
    let pause = Duration::from_millis(
        args.iter()
            .skip(4)
            .find_map(|a| a.strip_prefix("--pause-ms=")?.parse().ok())
            .unwrap_or(0),
    );
    let ready = args
        .iter()
        .skip(4)
        .find_map(|a| a.strip_prefix("--ready="))
        .map(PathBuf::from);
    let expected: u64 = expected.parse().unwrap_or(0);
    let mnt = PathBuf::from(mnt);
    let stop = PathBuf::from(stop);
    let files = FILES.map(|f| mnt.join(f));
    let held: Vec<Option<File>> = files
        .iter()
        .map(|f| {
            hold.then(|| {
                File::open(f).unwrap_or_else(|e| {
                    eprintln!("lxcfs-reader: open {}: {e}", f.display());
                    std::process::exit(2);
                })
            })
        })
        .collect();
    let (mut reads, mut fails, mut wrong) = (0u64, 0u64, 0u64);
    let mut slowest = Duration::ZERO;
    let mut first_error = String::new();
    let mut round = 0u64;
    loop {
        if round.is_multiple_of(16) && stop.exists() {
            break;
        }
        round += 1;
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        for (f, h) in files.iter().zip(&held) {
            reads += 1;
            let t = Instant::now();
            let r = read(f, h.as_ref());
            slowest = slowest.max(t.elapsed());
            match r {
                Ok(text) if text.is_empty() => {
                    fails += 1;
                    if first_error.is_empty() {
                        first_error = format!("{}: empty", f.display());
                    }
                }
                Ok(text) => {
                    if f.ends_with("meminfo") && memtotal(&text) != Some(expected) {
                        wrong += 1;
                        if first_error.is_empty() {
                            first_error =
                                format!("MemTotal {:?}, expected {expected}", memtotal(&text));
                        }
                    }
                }
                Err(e) => {
                    fails += 1;
                    if first_error.is_empty() {
                        first_error = format!("{}: {e}", f.display());
                    }
                }
            }
        }
        if round == 1 {
            if let Some(r) = &ready {
                if let Err(e) = File::create(r) {
                    eprintln!("lxcfs-reader: create {}: {e}", r.display());
                }
            }
        }
    }
    println!(
        "reads={reads} fails={fails} wrong={wrong} max_ms={} first_error={first_error}",
        slowest.as_millis()
    );
}
