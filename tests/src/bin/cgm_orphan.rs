//! A cgmanager connection that outlives the process that made it, for the identity tests:
//! connects to SOCKET, makes one call that needs the caller (ListChildren CONTROLLER ""), then
//! forks; the maker exits, and its child — which inherited the connection — waits until the
//! maker has been reaped (by whoever started this) and makes the same call again. Prints
//! `maker: <kind>` and `heir: <kind>`, each `ok` or the error's name.
//! Usage: cgm-orphan SOCKET CONTROLLER
//!
//! Single-threaded, so the child of `fork` may go on using std.

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::raw_dbus::{method_call, raw_handshake, reply_kind};
use nix::unistd::{fork, ForkResult};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(sock), Some(controller)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: cgm-orphan SOCKET CONTROLLER");
        std::process::exit(2);
    };
    let mut s = match raw_handshake(Path::new(sock)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cgm-orphan: {e}");
            std::process::exit(1);
        }
    };
    let call = |serial| method_call(serial, "ListChildren", &[controller.as_bytes(), b""]);
    use std::io::Write;
    let _ = s.write_all(&call(1));
    println!("maker: {}", reply_kind(&mut s));
    let me = nix::unistd::getpid();
    // SAFETY: this process has one thread, so the child may do anything the parent could.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => std::process::exit(0),
        Ok(ForkResult::Child) => {}
        Err(e) => {
            eprintln!("cgm-orphan: fork: {e}");
            std::process::exit(1);
        }
    }
    // Until the maker is gone for good: reaped, so not even a zombie holds its pid.
    let t0 = Instant::now();
    while nix::sys::signal::kill(me, None).is_ok() {
        if t0.elapsed() > Duration::from_secs(10) {
            println!("heir: the maker was never reaped");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = s.write_all(&call(2));
    println!("heir: {}", reply_kind(&mut s));
}
