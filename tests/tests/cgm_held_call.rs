//! Regression for issue 16: one call held in the kernel stalled every other client.
//!
//! The daemon's core is synchronous (cgroupfs, procfs and NSS calls). It ran on the async
//! threads — by default one thread for every client — and on a bus every sender shares one
//! connection whose calls zbus answered one at a time: a call that waited in the kernel held up
//! every other client until it returned.
//!
//! The wait here is one the test controls: in the daemon's own mount namespace `/etc/passwd` is
//! a FIFO, so the user lookup the delegation methods make waits in `open(2)` (the kernel's
//! `wait_for_partner`) until the test opens the other end — as it would on a host whose NSS
//! goes to an unreachable directory server, or as a cgroupfs write waits for an RCU grace period.
//! While it is held, other clients' Ping and GetValue must be answered at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cgmanager_dbus::{connect, Transport};
use e2e::cgm::{bin, CgmDaemon, CgmResult, PrivateBus, Scratch};

/// How long an answer may take while another client's call is held.
const PROMPT: Duration = Duration::from_secs(5);

/// `/etc/passwd` as the daemon sees it: a FIFO the test holds shut, then feeds the host's file
/// through, once per open, after [`Gate::open`].
struct Gate {
    _dir: tempfile::TempDir,
    fifo: PathBuf,
    stop: Arc<AtomicBool>,
    feeder: Option<JoinHandle<()>>,
}

impl Gate {
    fn new() -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("passwd");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        Gate {
            _dir: dir,
            fifo,
            stop: Arc::new(AtomicBool::new(false)),
            feeder: None,
        }
    }

    /// A wrapper for [`CgmDaemon::start_under`]: a private mount namespace with the FIFO on
    /// `/etc/passwd`.
    fn wrapper(&self) -> Vec<String> {
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/passwd && exec \"$@\"",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([self.fifo.display().to_string()])
        .collect()
    }

    /// Let lookups through from now on.
    fn open(&mut self) {
        let (fifo, stop) = (self.fifo.clone(), self.stop.clone());
        let passwd = std::fs::read("/etc/passwd").unwrap();
        self.feeder = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                // Blocks until the daemon opens its end (or Drop opens one to end this).
                let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
                    return;
                };
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let _ = f.write_all(&passwd);
            }
        }));
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Release whichever end waits: the feeder for a reader, the daemon for a writer.
        let ends: Vec<_> = [libc::O_RDONLY, libc::O_WRONLY]
            .into_iter()
            .filter_map(|mode| {
                std::fs::OpenOptions::new()
                    .read(mode == libc::O_RDONLY)
                    .write(mode == libc::O_WRONLY)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&self.fifo)
                    .ok()
            })
            .collect();
        if let Some(f) = self.feeder.take() {
            let _ = f.join();
        }
        drop(ends);
    }
}

/// The daemon with its lookups behind the gate, answering on its socket or on a bus of its
/// own; the gate goes first when dropped, so that a failing test does not leave the daemon
/// waiting on it.
struct Held {
    gate: Gate,
    d: CgmDaemon,
    bus: Option<PrivateBus>,
}

impl Held {
    fn start(on_bus: bool) -> Held {
        let gate = Gate::new();
        let wrapper = gate.wrapper();
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        let bus = on_bus.then(PrivateBus::start);
        let extra = match &bus {
            Some(b) => vec!["--bus", b.address.as_str()],
            None => vec![],
        };
        let d = CgmDaemon::start_under(&wrapper, "", &extra);
        let h = Held { gate, d, bus };
        // The socket file appears at bind, before the daemon listens; a bus name later still.
        until(Duration::from_secs(10), "the daemon answers", || {
            finish(cgm(&h.cgm_args(), &["ping"]), PROMPT, "Ping").0.ok
        });
        h
    }

    /// How `cgm` reaches the daemon.
    fn cgm_args(&self) -> Vec<String> {
        match &self.bus {
            Some(b) => vec!["--bus".into(), b.address.clone()],
            None => vec!["--socket".into(), self.d.socket.display().to_string()],
        }
    }

    /// How a D-Bus client reaches it.
    fn transport(&self) -> Transport {
        match &self.bus {
            Some(b) => Transport::Bus(Some(b.address.clone())),
            None => Transport::Peer(self.d.socket.display().to_string()),
        }
    }

    /// Wait until one of the daemon's threads sleeps on the FIFO (`a`: the client whose call
    /// that is, if it is a process of ours).
    fn wait_held(&self, mut a: Option<&mut Child>) {
        until(
            Duration::from_secs(10),
            "the daemon waits on the FIFO",
            || {
                if let Some(a) = a.as_mut() {
                    assert!(a.try_wait().unwrap().is_none(), "the held call returned");
                }
                threads_waiting_on_fifo(self.d.pid())
            },
        );
    }
}

fn threads_waiting_on_fifo(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|rd| {
            rd.flatten().any(|t| {
                std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default()
                    == "wait_for_partner"
            })
        })
        .unwrap_or(false)
}

/// Wait until `done`, at most `limit`.
fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `cgm <transport> args…` as root, started now.
fn cgm(transport: &[String], args: &[&str]) -> Child {
    Command::new(bin("cgm"))
        .args(transport)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for a client to finish within `limit`; kill it (we started it) if it does not.
fn finish(mut c: Child, limit: Duration, what: &str) -> (CgmResult, Duration) {
    let t0 = Instant::now();
    while c.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = c.kill();
            let _ = c.wait();
            panic!("{what} got no answer within {limit:?} while another client's call was held");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (CgmResult::of(&c.wait_with_output().unwrap()), t0.elapsed())
}

/// Hold one client's Delegate in the kernel; another client's Ping and GetValue are answered
/// meanwhile; once released, the held call completes normally.
fn held_call_stalls_no_one(h: &mut Held, s: &Scratch) {
    let transport = h.cgm_args();
    let transport = transport.as_slice();
    let mut a = cgm(transport, &["delegate", "memory"]);
    h.wait_held(Some(&mut a));
    let (ping, t_ping) = finish(cgm(transport, &["ping"]), PROMPT, "Ping");
    assert!(ping.ok, "{}", ping.err);
    let key = "memory.limit_in_bytes";
    let (get, t_get) = finish(
        cgm(transport, &["getvalue", "memory", &s.rel(""), key]),
        PROMPT,
        "GetValue",
    );
    assert!(get.ok, "{}", get.err);
    assert!(
        a.try_wait().unwrap().is_none(),
        "the held call must still be waiting"
    );
    eprintln!("while one call was held: Ping {t_ping:?}, GetValue {t_get:?}");
    h.gate.open();
    let (held, _) = finish(a, Duration::from_secs(20), "the released call");
    // Root has no delegation in an empty policy: the answer the call gives unheld.
    assert_eq!(held.kind(), Some("NotDelegated"), "{}", held.err);
}

#[test]
fn a_call_held_in_the_kernel_stalls_no_other_client_on_the_socket() {
    let s = Scratch::new("held");
    held_call_stalls_no_one(&mut Held::start(false), &s);
}

#[test]
fn a_call_held_in_the_kernel_stalls_no_other_sender_on_a_bus() {
    let s = Scratch::new("held-bus");
    held_call_stalls_no_one(&mut Held::start(true), &s);
}

/// While one call of a client is held, its next call waits for it: a client's calls run in the
/// order it sent them, on the socket (a connection per client, answered in order) and on a bus
/// (a task per call, queued per sender). Calls are sent without waiting for answers.
fn a_clients_next_call_waits_for_its_held_one(h: &mut Held, s: &Scratch) {
    let key = "memory.soft_limit_in_bytes";
    let file = s.dir("memory", "").join(key);
    let value = "268435456";
    let read = || std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_ne!(read(), value);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt.block_on(connect(&h.transport())).unwrap();
    let msg = |iface: &str, member: &str| {
        zbus::Message::method_call(cgmanager_dbus::OBJECT_PATH, member.to_string())
            .destination(cgmanager_dbus::BUS_NAME)
            .interface(iface.to_string())
    };
    let delegate = msg(cgmanager_dbus::INTERFACE_V1, "Delegate")
        .build(&("memory",))
        .unwrap();
    let cg = s.rel("");
    let set = msg(cgmanager_dbus::INTERFACE, "SetValue")
        .build(&("memory", cg.as_str(), key, value))
        .unwrap();
    rt.block_on(conn.send(&delegate)).unwrap();
    h.wait_held(None);
    rt.block_on(conn.send(&set)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_ne!(
        read(),
        value,
        "the second call ran while the first was held"
    );
    h.gate.open();
    until(Duration::from_secs(10), "the second call ran", || {
        read() == value
    });
}

#[test]
fn a_clients_calls_run_in_order_on_the_socket() {
    let s = Scratch::new("held-order");
    a_clients_next_call_waits_for_its_held_one(&mut Held::start(false), &s);
}

#[test]
fn a_senders_calls_run_in_order_on_a_bus() {
    let s = Scratch::new("held-order-bus");
    a_clients_next_call_waits_for_its_held_one(&mut Held::start(true), &s);
}
