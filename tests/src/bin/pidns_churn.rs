//! Short-lived containers by the thousand, for the lxcfs fd-exhaustion test: each one is a new
//! pid namespace whose init reads `proc/meminfo` below a mount once and exits (the pattern of
//! CI runners and per-request sandboxes). Runs up to PARALLEL at a time and prints
//! `ok=N failed=F`, each failure's reason on stderr; exits 1 if any failed.
//! Usage: pidns-churn MOUNT COUNT PARALLEL
//!
//! Single-threaded on purpose: every namespace costs two `fork`s (a pid namespace created by
//! `unshare` only applies to the unsharer's children), and forking a single-threaded process
//! leaves the child free to allocate and use std.

use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (
        args.get(1),
        args.get(2).and_then(|c| c.parse::<u64>().ok()),
        args.get(3).and_then(|p| p.parse::<u64>().ok()),
    );
    let (Some(mnt), Some(count), Some(parallel)) = parsed else {
        eprintln!("usage: pidns-churn MOUNT COUNT PARALLEL");
        std::process::exit(2);
    };
    let meminfo = Path::new(mnt).join("proc/meminfo");
    let (mut started, mut running, mut ok, mut failed) = (0u64, 0u64, 0u64, 0u64);
    while started < count || running > 0 {
        while running < parallel.max(1) && started < count {
            match container(&meminfo) {
                Ok(_) => running += 1,
                Err(e) => {
                    eprintln!("fork: {e}");
                    failed += 1;
                }
            }
            started += 1;
        }
        if running == 0 {
            continue;
        }
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(_, 0)) => ok += 1,
            Ok(_) => failed += 1,
            Err(e) => {
                eprintln!("waitpid: {e}");
                break;
            }
        }
        running -= 1;
    }
    println!("ok={ok} failed={failed}");
    std::process::exit(i32::from(failed > 0 || ok != count));
}

/// Start one container; its exit status says whether its init read the file.
fn container(meminfo: &Path) -> nix::Result<Pid> {
    // SAFETY: this program is single-threaded, so the child may do anything.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let code = match nix::sched::unshare(CloneFlags::CLONE_NEWPID) {
                Ok(()) => init_in_new_namespace(meminfo),
                Err(e) => {
                    eprintln!("unshare(CLONE_NEWPID): {e}");
                    3
                }
            };
            // SAFETY: leaving a forked child without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Fork the namespace's init, let it read, and return its verdict.
fn init_in_new_namespace(meminfo: &Path) -> i32 {
    // SAFETY: still single-threaded (a fork of a single-threaded process).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let code = match std::fs::read_to_string(meminfo) {
                Ok(t) if t.contains("MemTotal:") => 0,
                Ok(t) => {
                    eprintln!("{}: no MemTotal in {t:?}", meminfo.display());
                    1
                }
                Err(e) => {
                    eprintln!("{}: {e}", meminfo.display());
                    1
                }
            };
            // SAFETY: leaving a forked child without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, c)) => c,
            other => {
                eprintln!("init: {other:?}");
                4
            }
        },
        Err(e) => {
            eprintln!("fork into the new namespace: {e}");
            5
        }
    }
}
