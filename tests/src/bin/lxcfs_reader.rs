//! A container's reader for the lxcfs resilience tests: reads `proc/meminfo`, `proc/stat` and
//! `proc/cpuinfo` below a mount in a tight loop until a stop file appears, checking every
//! read succeeds and that meminfo shows the container's own limit, then prints
//! `reads=N fails=F wrong=W first_error=…`.
//! Usage: lxcfs-reader MOUNT EXPECTED_MEMTOTAL_KB STOPFILE

use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mnt), Some(expected), Some(stop)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: lxcfs-reader MOUNT EXPECTED_MEMTOTAL_KB STOPFILE");
        std::process::exit(2);
    };
    let expected: u64 = expected.parse().unwrap_or(0);
    let mnt = PathBuf::from(mnt);
    let stop = PathBuf::from(stop);
    let files = ["proc/meminfo", "proc/stat", "proc/cpuinfo"].map(|f| mnt.join(f));
    let (mut reads, mut fails, mut wrong) = (0u64, 0u64, 0u64);
    let mut first_error = String::new();
    let mut round = 0u64;
    loop {
        if round.is_multiple_of(16) && stop.exists() {
            break;
        }
        round += 1;
        for f in &files {
            reads += 1;
            match std::fs::read_to_string(f) {
                Ok(text) if text.is_empty() => {
                    fails += 1;
                    if first_error.is_empty() {
                        first_error = format!("{}: empty", f.display());
                    }
                }
                Ok(text) => {
                    if f.ends_with("meminfo") {
                        let total = text.lines().find_map(|l| {
                            l.strip_prefix("MemTotal:")?
                                .split_whitespace()
                                .next()?
                                .parse::<u64>()
                                .ok()
                        });
                        if total != Some(expected) {
                            wrong += 1;
                            if first_error.is_empty() {
                                first_error = format!("MemTotal {total:?}, expected {expected}");
                            }
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
    }
    println!("reads={reads} fails={fails} wrong={wrong} first_error={first_error}");
}
