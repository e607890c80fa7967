//! FUSE over io_uring (Linux ≥ 6.14, `CONFIG_FUSE_IO_URING`): the kernel hands each request
//! to a queue of the CPU its caller runs on, and the reply and the fetch of the next request
//! are one `io_uring_enter`. A classic `/dev/fuse` round trip costs ~5 µs when the serving
//! thread shares the reader's CPU and 30–40 µs when it does not; here the serving thread is
//! pinned to the reader's CPU by construction.
//!
//! Protocol (`fs/fuse/dev_uring.c`, `include/uapi/linux/fuse.h` 7.42+):
//!
//! * the `FUSE_INIT` reply, written on `/dev/fuse` like any other, carries
//!   `FUSE_OVER_IO_URING` ([`patch_init`]; fuse-backend-rs 0.14 does not know the flag);
//!   the kernel offers it only while the host's `enable_uring` knob ([`KNOB`]) is `Y`;
//! * then one queue per possible CPU, each served by a thread pinned to that CPU with its own
//!   ring (`IORING_SETUP_SQE128`): every ring entry is a 288-byte header buffer and a payload
//!   buffer, registered with `FUSE_IO_URING_CMD_REGISTER`; a completion with result 0 means
//!   the kernel copied a request into the entry; the reply goes into the same buffers and
//!   `FUSE_IO_URING_CMD_COMMIT_AND_FETCH` returns the entry for the next request;
//! * FORGET, INTERRUPT and notifications stay on `/dev/fuse`, which the classic workers keep
//!   reading (they also serve what arrives before every queue has an entry).
//!
//! The requests are served by the same fuse-backend-rs `Server` as the classic loop: the
//! request is rebuilt in `/dev/fuse` form and the reply is captured in the entry's memory
//! ([`Capture`]), so the two transports cannot answer differently.
//!
//! Hand-over. A request the kernel has copied into an entry waits for a commit naming its id
//! (its `unique`, kept by the kernel in the header) on that queue — from any ring, in any
//! process, as long as the entry's buffers are at the same addresses in the committing
//! process. So the buffers live in a memfd ([`Buffers`]) mapped at an address recorded in it,
//! and a live upgrade passes it ([`URING_FD_ENV`]) to the successor, which maps it at the same
//! address and answers every entry whose header still holds an id (`Buffers::pending`; a
//! server zeroes the id before each commit). Before the exec, each ring thread answers what
//! it holds, then stops answering: it leaves every request the kernel copies into its entries
//! for the successor until none is idle (or `FILL` passes), closes its ring and stays alive
//! while the kernel cancels what is still idle. A request the kernel gives an entry while
//! its ring or its thread is *dying* is never copied into it (`fuse_uring_send_in_task`,
//! `IO_URING_F_TASK_DEAD`; the reader gets `ECANCELED` here), so nobody could learn its id:
//! hence no idle entries when the ring closes. That same window is why a `kill -9` can leave
//! a reader stuck until the mount goes away, whatever a successor does: the README states the
//! trade and `auto` keeps the classic transport where a crash is meant to be survived
//! (`--supervise`, systemd's fd store).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::transport::{FuseBuf, FuseDevWriter, Reader, Writer};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use nix::sys::eventfd::EventFd;

use super::FuseFs;

/// The host's switch: the kernel offers FUSE over io_uring only while it reads `Y`. A global,
/// root-only knob the daemon never writes.
pub const KNOB: &str = "/sys/module/fuse/parameters/enable_uring";
/// The ring buffers' memfd, for a successor (live upgrade).
pub const URING_FD_ENV: &str = "LXCFS_URING_FD";

/// `FUSE_INIT` opcode.
pub const FUSE_INIT: u32 = 26;
/// `FUSE_INIT_EXT` (flags bit 30): `flags2` is valid.
const INIT_EXT: u32 = 1 << 30;
/// `FUSE_OVER_IO_URING`: bit 41 of the 64 flags, bit 9 of `flags2`.
const OVER_IO_URING2: u32 = 1 << 9;

const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;

/// `struct fuse_in_header`.
const IN_HEADER: usize = 40;
/// `struct fuse_out_header`.
const OUT_HEADER: usize = 16;
/// `struct fuse_uring_req_header`: `in_out[128]`, `op_in[128]`, `ring_ent_in_out`.
const REQ_HEADER: usize = 288;
const OP_IN: usize = 128;
const OP_IN_LEN: usize = 128;
const COMMIT_ID: usize = 256 + 8;
const PAYLOAD_SZ: usize = 256 + 16;
/// The payload buffer: the kernel wants at least max(8 KiB, max_write, max_pages pages); the
/// filesystem negotiates neither big writes nor `max_pages`, so the default 32 pages.
const PAYLOAD: usize = 32 * 4096;
/// One entry in the memfd: a page holding the header (and, in its last 16 bytes, the reply's
/// out header as captured, right before the payload), then the payload.
const PAGE: usize = 4096;
const ENTRY: usize = PAGE + PAYLOAD;
/// Entries per queue: one being answered while the kernel fills the next.
const DEPTH: usize = 4;
/// Where the buffers are mapped if that range is free (64 TiB: x86-64's and arm64's 47/48-bit
/// user space puts the binary near 0x55…, the heap after it and mappings near 0x7f…).
const PREFERRED: usize = 0x4000_0000_0000;
/// The memfd's first page: magic, address, queues, depth.
const MAGIC: u64 = u64::from_le_bytes(*b"LXCFSURG");

/// `--io-uring`: which transport to serve with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// io_uring where the host enabled it and a crash need not be survived (not with
    /// `--supervise`, nor under systemd's fd store): see the README.
    Auto,
    /// io_uring; fail to start if the host has not enabled it.
    On,
    /// The classic `/dev/fuse` read loop.
    Off,
}

/// What the knob says: `Some(true)` for `Y`, `None` without FUSE over io_uring at all.
pub fn knob() -> Option<bool> {
    std::fs::read_to_string(KNOB)
        .ok()
        .map(|s| s.trim() == "Y" || s.trim() == "1")
}

/// The possible CPUs (`/sys/devices/system/cpu/possible`, e.g. `0-3`): the kernel makes one
/// queue per possible CPU and sends a request to the queue numbered after its caller's CPU.
fn possible_cpus() -> Vec<usize> {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            cpus.extend(a..=b);
        }
    }
    if cpus.is_empty() {
        cpus.push(0);
    }
    cpus
}

/// Set `FUSE_OVER_IO_URING` in a captured `FUSE_INIT` reply (`reply`, out header included)
/// if the kernel offered it in `request`. True if set.
pub fn patch_init(request: &[u8], reply: &mut [u8]) -> bool {
    let word = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    };
    // fuse_init_in: major, minor, max_readahead, flags @12, flags2 @16.
    let (Some(flags), Some(flags2)) =
        (word(request, IN_HEADER + 12), word(request, IN_HEADER + 16))
    else {
        return false;
    };
    let offered = flags & INIT_EXT != 0 && flags2 & OVER_IO_URING2 != 0;
    // fuse_init_out: flags @12, flags2 @32 (the reply of a 7.36+ kernel is 64 bytes).
    let error = word(reply, 4).unwrap_or(1);
    if !offered || error != 0 || reply.len() < OUT_HEADER + 64 {
        return false;
    }
    let (Some(out), Some(out2)) = (word(reply, OUT_HEADER + 12), word(reply, OUT_HEADER + 32))
    else {
        return false;
    };
    reply[OUT_HEADER + 12..OUT_HEADER + 16].copy_from_slice(&(out | INIT_EXT).to_le_bytes());
    reply[OUT_HEADER + 32..OUT_HEADER + 36].copy_from_slice(&(out2 | OVER_IO_URING2).to_le_bytes());
    true
}

/// A reply captured in memory instead of written to `/dev/fuse`: fuse-backend-rs's writer,
/// made "buffered" from the start so that every byte of the reply lands in `out` (header
/// first, then the arguments), contiguous. On some paths (reads, errors) it then `write`s the
/// finished reply to its descriptor: that descriptor is -1, so the write fails at once
/// (`EBADF`, no file to look up — it was `/dev/null`, two writes a read) and the server's
/// error for it is ignored: what counts is the reply in `out`, judged by its header.
pub struct Capture;

/// No descriptor: see [`Capture`].
const NO_FD: RawFd = -1;

impl Capture {
    /// Serve `request` (in `/dev/fuse` form) with `server`; the reply goes to `out`. Returns
    /// the reply's length (from its out header), 0 if nothing valid was written.
    pub fn serve(&self, server: &Server<FuseFs>, request: &mut [u8], out: &mut [u8]) -> usize {
        let unique = request.get(8..16).map(u64_le).unwrap_or(0);
        out[..OUT_HEADER].fill(0);
        let cap = out.len();
        match Reader::<()>::from_fuse_buffer(FuseBuf::new(request)) {
            Ok(reader) => match FuseDevWriter::<()>::new(NO_FD, out) {
                Ok(mut w) => {
                    // Splitting off an empty tail makes the writer buffer everything it is given.
                    if w.split_at(cap).is_ok() {
                        // Its error is the failed write to NO_FD, or a request the header
                        // check below refuses.
                        let _ = server.handle_message(reader, Writer::from(w), None, None);
                    }
                }
                Err(e) => tracing::debug!("fuse request (io_uring): {e}"),
            },
            Err(e) => tracing::debug!("fuse request (io_uring): {e}"),
        }
        let len = u32_le(&out[0..4]) as usize;
        let valid = (OUT_HEADER..=cap).contains(&len) && u64_le(&out[8..16]) == unique;
        if valid {
            len
        } else {
            tracing::debug!("fuse request {unique} (io_uring): no valid reply");
            0
        }
    }
}

fn u32_le(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[..4]);
    u32::from_le_bytes(w)
}

fn u64_le(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// The ring entries' buffers: a memfd mapped shared, at the same address in every process
/// that serves them (see the module doc). Page 0: `MAGIC`, the address, the queues, the
/// depth; then `queues × DEPTH` entries of `ENTRY` bytes.
pub struct Buffers {
    file: File,
    base: *mut u8,
    len: usize,
    queues: usize,
}

// SAFETY: the mapping is plain shared memory; each entry is touched by one ring thread at a
// time (the one whose queue it belongs to), and the kernel only while that thread waits.
unsafe impl Send for Buffers {}
// SAFETY: as above.
unsafe impl Sync for Buffers {}

impl Buffers {
    /// New buffers for `queues` queues in a new memfd.
    fn create(queues: usize) -> io::Result<Buffers> {
        Self::create_in(empty_memfd()?, queues)
    }

    /// New buffers for `queues` queues in `file`, an empty memfd (one a supervisor holds
    /// for its children, see [`empty_memfd`]).
    fn create_in(file: File, queues: usize) -> io::Result<Buffers> {
        let len = PAGE + queues * DEPTH * ENTRY;
        file.set_len(len as u64)?;
        // Far from where the kernel puts a process's binary, heap, libraries and stacks, so
        // that the successor of a live upgrade (a new image, laid out anew) finds the range
        // free; anywhere if it is taken.
        let base = map(&file, len, Some(PREFERRED)).or_else(|_| map(&file, len, None))?;
        let b = Buffers {
            file,
            base,
            len,
            queues,
        };
        let mut meta = [0u8; 24];
        meta[0..8].copy_from_slice(&MAGIC.to_le_bytes());
        meta[8..16].copy_from_slice(&(base as u64).to_le_bytes());
        meta[16..20].copy_from_slice(&(queues as u32).to_le_bytes());
        meta[20..24].copy_from_slice(&(DEPTH as u32).to_le_bytes());
        b.file.write_all_at(&meta, 0)?;
        Ok(b)
    }

    /// A predecessor's buffers, mapped at the address it used (or an error: its pending
    /// requests then cannot be answered).
    fn adopt(file: File) -> io::Result<Buffers> {
        let mut meta = [0u8; 24];
        file.read_exact_at(&mut meta, 0)?;
        let queues = u32_le(&meta[16..20]) as usize;
        let depth = u32_le(&meta[20..24]) as usize;
        if u64_le(&meta[0..8]) != MAGIC || depth != DEPTH || queues == 0 || queues > 4096 {
            return Err(io::Error::other("not this build's io_uring buffers"));
        }
        let len = PAGE + queues * DEPTH * ENTRY;
        if file.metadata()?.len() < len as u64 {
            return Err(io::Error::other("io_uring buffers: truncated"));
        }
        let at = u64_le(&meta[8..16]) as usize;
        let base = map(&file, len, Some(at))?;
        Ok(Buffers {
            file,
            base,
            len,
            queues,
        })
    }

    /// The memfd, to hand over.
    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.file.as_fd()
    }

    fn entry(&self, q: usize, i: usize) -> *mut u8 {
        debug_assert!(q < self.queues && i < DEPTH);
        // SAFETY: within the mapping (PAGE + queues × DEPTH × ENTRY bytes).
        unsafe { self.base.add(PAGE + (q * DEPTH + i) * ENTRY) }
    }

    /// The id of the request waiting in entry `i` of queue `q`, if any: the kernel writes it
    /// when it copies a request in; a server zeroes it before it commits the reply.
    fn pending(&self, q: usize, i: usize) -> Option<u64> {
        // SAFETY: within the entry's header page; read while no ring serves this entry.
        let id = unsafe { std::ptr::read_volatile(self.entry(q, i).add(COMMIT_ID).cast::<u64>()) };
        (id != 0).then_some(id)
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; no ring uses it any more (their threads are
        // joined before the buffers go).
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Map `len` bytes of `file` shared, at `at` exactly (never over an existing mapping) or
/// anywhere.
fn map(file: &File, len: usize, at: Option<usize>) -> io::Result<*mut u8> {
    let (hint, flags) = match at {
        Some(a) => (
            a as *mut libc::c_void,
            libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
        ),
        None => (std::ptr::null_mut(), libc::MAP_SHARED),
    };
    // SAFETY: a new shared mapping of our memfd; MAP_FIXED_NOREPLACE never replaces one.
    let p = unsafe {
        libc::mmap(
            hint,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            file.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    if let Some(a) = at {
        if p as usize != a {
            // SAFETY: the mapping just made, not where it must be (a kernel before 4.17
            // takes MAP_FIXED_NOREPLACE as a hint).
            unsafe { libc::munmap(p, len) };
            return Err(io::Error::other(
                "cannot map the io_uring buffers at their address",
            ));
        }
    }
    Ok(p.cast())
}

/// The io_uring transport of one connection: the buffers and the ring threads.
pub struct Rings {
    server: Arc<Server<FuseFs>>,
    fuse: RawFd,
    buffers: Arc<Buffers>,
    cpus: Vec<usize>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stop: Mutex<Arc<EventFd>>,
    /// Set once the rings serve (after `FUSE_INIT`, or at once for an adopted connection).
    active: AtomicBool,
    /// Set when stopping for a hand-over (the successor answers what the entries hold).
    handover: Arc<AtomicBool>,
}

/// What the ring threads of a live upgrade must wait for before they exit: the kernel
/// cancelling their idle entries once their ring is closed (its exit work), so no request is
/// given to an entry of a dying thread.
const LINGER: Duration = Duration::from_millis(50);

impl Rings {
    /// The transport for the connection `fuse` (which must stay open as long as this), with
    /// new buffers, or a predecessor's (`inherited`, whose pending requests are answered
    /// first when the rings start).
    pub fn new(
        server: Arc<Server<FuseFs>>,
        fuse: RawFd,
        inherited: Option<File>,
    ) -> io::Result<Rings> {
        let cpus = possible_cpus();
        let buffers = match inherited {
            // A supervisor's memfd, not yet laid out (its first child).
            Some(f) if f.metadata().map(|m| m.len() == 0).unwrap_or(false) => {
                Buffers::create_in(f, cpus.len())?
            }
            Some(f) => match Buffers::adopt(f) {
                Ok(b) if b.queues == cpus.len() => b,
                Ok(_) => {
                    tracing::warn!("the predecessor's io_uring buffers have another CPU count; starting afresh");
                    Buffers::create(cpus.len())?
                }
                Err(e) => {
                    tracing::warn!("cannot adopt the predecessor's io_uring buffers ({e}); requests it had fetched stay unanswered");
                    Buffers::create(cpus.len())?
                }
            },
            None => Buffers::create(cpus.len())?,
        };
        Ok(Rings {
            server,
            fuse,
            buffers: Arc::new(buffers),
            cpus,
            threads: Mutex::new(Vec::new()),
            stop: Mutex::new(Arc::new(super::stop_event()?)),
            active: AtomicBool::new(false),
            handover: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The buffers' memfd, for a successor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.buffers.fd()
    }

    /// Are the rings serving?
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Start one pinned thread per queue: each answers what its queue's entries hold (a
    /// predecessor's requests), registers the others and serves. Fails if the kernel refuses
    /// the first registration (then nothing was started and the classic loop serves).
    pub fn start(&self) -> io::Result<()> {
        let stop = self
            .stop
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .clone();
        let mut threads = self
            .threads
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        for (q, cpu) in self.cpus.iter().copied().enumerate() {
            let handover = self.handover.clone();
            let (server, buffers, fuse, stop, tx) = (
                self.server.clone(),
                self.buffers.clone(),
                self.fuse,
                stop.clone(),
                tx.clone(),
            );
            let t = std::thread::Builder::new()
                .name(format!("fuse-ring-{q}"))
                .spawn(move || {
                    let mut queue = match Queue::new(q, cpu, fuse, &buffers, &stop) {
                        Ok(queue) => queue,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let started = queue.start(&server);
                    let ok = started.is_ok();
                    let _ = tx.send(started);
                    drop(tx);
                    if ok {
                        queue.serve(&server, &handover);
                    }
                })?;
            threads.push(t);
        }
        drop(tx);
        let mut first = None;
        // One verdict per queue (each thread keeps its sender while it serves).
        for _ in 0..self.cpus.len() {
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first.get_or_insert(e);
                }
                Err(_) => {
                    first.get_or_insert(io::Error::other("an io_uring thread died"));
                }
            }
        }
        match first {
            None => {
                self.active.store(true, Ordering::Relaxed);
                tracing::info!(
                    "serving over io_uring: {} queue(s), one thread pinned to each CPU",
                    self.cpus.len()
                );
                Ok(())
            }
            Some(e) => {
                self.wake();
                for t in threads.drain(..) {
                    let _ = t.join();
                }
                // The event stays set: a later start (after FUSE_INIT) needs a fresh one.
                if let (Ok(mut s), Ok(fresh)) = (self.stop.lock(), super::stop_event()) {
                    *s = Arc::new(fresh);
                }
                Err(e)
            }
        }
    }

    fn wake(&self) {
        if let Ok(s) = self.stop.lock() {
            if let Err(e) = s.write(1) {
                tracing::warn!("cannot stop the io_uring threads: {e}");
            }
        }
    }

    /// Stop the ring threads for a live upgrade: each answers what it holds, then leaves the
    /// requests its entries receive to the successor until none is idle (or `FILL`), and
    /// closes its ring (see the module doc). Returns how many had not finished within
    /// `timeout`.
    pub fn drain(&self, timeout: Duration) -> usize {
        self.handover.store(true, Ordering::Relaxed);
        self.wake();
        let deadline = std::time::Instant::now() + timeout + LINGER;
        let Ok(mut threads) = self.threads.lock() else {
            return 0;
        };
        while threads.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (done, stuck): (Vec<_>, Vec<_>) = threads.drain(..).partition(JoinHandle::is_finished);
        for t in done {
            let _ = t.join();
        }
        self.active.store(false, Ordering::Relaxed);
        stuck.len()
    }

    /// Serve again after [`Rings::drain`] (the hand-over failed): what the kernel copied into
    /// the entries meanwhile is answered first.
    pub fn resume(&self) -> io::Result<()> {
        if let Ok(mut s) = self.stop.lock() {
            *s = Arc::new(super::stop_event()?);
        }
        self.handover.store(false, Ordering::Relaxed);
        self.start()
    }

    /// Stop and join the ring threads (unmount: the kernel also ends every entry).
    pub fn stop(&self) {
        self.wake();
        if let Ok(mut threads) = self.threads.lock() {
            for t in threads.drain(..) {
                let _ = t.join();
            }
        }
        self.active.store(false, Ordering::Relaxed);
    }
}

/// How long a queue waits for its registrations to be refused before it serves.
const REFUSAL: Duration = Duration::from_millis(10);

/// `user_data` of the stop event's poll.
const STOP: u64 = u64::MAX;

/// One queue: its ring, its entries, the thread's scratch buffers.
struct Queue<'a> {
    q: usize,
    fuse: RawFd,
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
    buffers: &'a Buffers,
    stop: &'a EventFd,
    /// The `iovec[2]` of each entry, read by the kernel when a REGISTER is submitted.
    iovecs: Vec<[libc::iovec; 2]>,
    request: Vec<u8>,
    capture: Capture,
    /// Entries the kernel still has (each ends with a negative completion).
    live: usize,
    /// Completions seen while starting, served first.
    backlog: Vec<(u64, i32)>,
}

impl<'a> Queue<'a> {
    fn new(
        q: usize,
        cpu: usize,
        fuse: RawFd,
        buffers: &'a Buffers,
        stop: &'a EventFd,
    ) -> io::Result<Queue<'a>> {
        pin(cpu);
        let ring = IoUring::<squeue::Entry128, cqueue::Entry>::builder()
            .setup_single_issuer()
            .build((2 * DEPTH + 2) as u32)?;
        let iovecs = (0..DEPTH)
            .map(|i| {
                let e = buffers.entry(q, i);
                [
                    libc::iovec {
                        iov_base: e.cast(),
                        iov_len: REQ_HEADER,
                    },
                    libc::iovec {
                        // SAFETY: the payload follows the header page within the entry.
                        iov_base: unsafe { e.add(PAGE) }.cast(),
                        iov_len: PAYLOAD,
                    },
                ]
            })
            .collect();
        Ok(Queue {
            q,
            fuse,
            ring,
            buffers,
            stop,
            iovecs,
            request: vec![0u8; IN_HEADER + OP_IN_LEN + PAYLOAD],
            capture: Capture,
            live: 0,
            backlog: Vec::new(),
        })
    }

    /// Answer the requests a predecessor left in this queue's entries, register the rest,
    /// and wait for the first registration's verdict.
    fn start(&mut self, server: &Server<FuseFs>) -> io::Result<()> {
        let mut fresh = Vec::new();
        let mut answered = 0;
        for i in 0..DEPTH {
            match self.buffers.pending(self.q, i) {
                Some(_) => {
                    // Its commit also makes the entry ours (the kernel takes the new ring's
                    // command as the entry's).
                    let sqe = self.answer(server, i);
                    self.push(sqe)?;
                    answered += 1;
                }
                None => fresh.push(i),
            }
        }
        for i in fresh {
            let sqe = self.register(i);
            self.push(sqe)?;
        }
        let poll = opcode::PollAdd::new(types::Fd(self.stop.as_raw_fd()), libc::POLLIN as u32)
            .build()
            .user_data(STOP);
        self.push(poll.into())?;
        self.live = DEPTH;
        self.ring.submit()?;
        if answered > 0 {
            tracing::info!(
                "io_uring queue {}: answered {answered} request(s) the previous server had fetched",
                self.q
            );
        }
        // A refused registration completes at once, or (EAGAIN: FUSE_INIT not answered yet,
        // an adopted connection) after a detour through io_uring's workers; a good one only
        // when the entry gets a request, which `serve` then answers.
        std::thread::sleep(REFUSAL);
        let early: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        let mut refused = None;
        for (data, res) in early {
            if data != STOP && res < 0 {
                self.live -= 1;
                refused.get_or_insert(res);
            } else {
                self.backlog.push((data, res));
            }
        }
        match refused {
            Some(e) if self.live == 0 => Err(io::Error::from_raw_os_error(-e)),
            Some(e) => {
                tracing::warn!(
                    "io_uring queue {}: an entry was refused: {}",
                    self.q,
                    io::Error::from_raw_os_error(-e)
                );
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn push(&mut self, sqe: squeue::Entry128) -> io::Result<()> {
        // SAFETY: every buffer an SQE points at (the iovecs, the entries) outlives the ring.
        while unsafe { self.ring.submission().push(&sqe) }.is_err() {
            self.ring.submit()?;
        }
        Ok(())
    }

    /// `FUSE_IO_URING_CMD_REGISTER` of entry `i`.
    fn register(&self, i: usize) -> squeue::Entry128 {
        let sqe = opcode::UringCmd80::new(types::Fd(self.fuse), CMD_REGISTER)
            .cmd(cmd(0, self.q))
            .addr(Some(self.iovecs[i].as_ptr() as u64))
            .build()
            .user_data(i as u64);
        with_len(sqe, 2)
    }

    /// Serve the request in entry `i`; the `COMMIT_AND_FETCH` that sends the reply.
    fn answer(&mut self, server: &Server<FuseFs>, i: usize) -> squeue::Entry128 {
        let e = self.buffers.entry(self.q, i);
        // SAFETY: the entry is ours until we commit it: the kernel wrote the request and waits.
        let header = unsafe { std::slice::from_raw_parts_mut(e, PAGE) };
        // SAFETY: as above; the payload follows the header page.
        let payload = unsafe { std::slice::from_raw_parts(e.add(PAGE), PAYLOAD) };
        let commit_id = u64_le(&header[COMMIT_ID..COMMIT_ID + 8]);
        let len = u32_le(&header[0..4]) as usize;
        let payload_sz = u32_le(&header[PAYLOAD_SZ..PAYLOAD_SZ + 4]) as usize;
        let op_len = len.checked_sub(IN_HEADER + payload_sz);
        let out_len = match op_len {
            Some(op) if op <= OP_IN_LEN && payload_sz <= PAYLOAD => {
                let req = &mut self.request[..len];
                req[..IN_HEADER].copy_from_slice(&header[..IN_HEADER]);
                req[IN_HEADER..IN_HEADER + op].copy_from_slice(&header[OP_IN..OP_IN + op]);
                req[IN_HEADER + op..].copy_from_slice(&payload[..payload_sz]);
                // The out header lands in the last 16 bytes of the header page, the arguments
                // right after it: in the payload, where the kernel reads them.
                // SAFETY: [PAGE-16, ENTRY) of this entry, ours until the commit.
                let out = unsafe {
                    std::slice::from_raw_parts_mut(e.add(PAGE - OUT_HEADER), OUT_HEADER + PAYLOAD)
                };
                self.capture.serve(server, req, out)
            }
            _ => 0,
        };
        // SAFETY: as above (re-borrowed after the capture wrote through its own slice).
        let header = unsafe { std::slice::from_raw_parts_mut(e, PAGE) };
        let (out_len, reply) = if out_len == 0 {
            tracing::debug!(
                "io_uring queue {}: malformed request {commit_id}: EIO",
                self.q
            );
            let mut h = [0u8; OUT_HEADER];
            h[0..4].copy_from_slice(&(OUT_HEADER as u32).to_le_bytes());
            h[4..8].copy_from_slice(&(-libc::EIO).to_le_bytes());
            h[8..16].copy_from_slice(&commit_id.to_le_bytes());
            (OUT_HEADER, h)
        } else {
            let mut h = [0u8; OUT_HEADER];
            h.copy_from_slice(&header[PAGE - OUT_HEADER..PAGE]);
            (out_len, h)
        };
        header[..OUT_HEADER].copy_from_slice(&reply);
        header[PAYLOAD_SZ..PAYLOAD_SZ + 4]
            .copy_from_slice(&((out_len - OUT_HEADER) as u32).to_le_bytes());
        // Answered: a successor must not answer it again (see `Buffers::pending`).
        header[COMMIT_ID..COMMIT_ID + 8].fill(0);
        opcode::UringCmd80::new(types::Fd(self.fuse), CMD_COMMIT_AND_FETCH)
            .cmd(cmd(commit_id, self.q))
            .build()
            .user_data(i as u64)
    }

    /// Serve until told to stop (then hand over: close the ring and linger) or until the
    /// kernel has ended every entry (unmount).
    fn serve(mut self, server: &Server<FuseFs>, handover: &AtomicBool) {
        let mut stopping = false;
        // Entries holding a request left for the successor (a hand-over).
        let mut held = 0;
        let mut deadline_passed = false;
        let mut done = std::mem::take(&mut self.backlog);
        while self.live > 0 && !(stopping && (held >= self.live || deadline_passed)) {
            if done.is_empty() {
                match self.ring.submit_and_wait(1) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Err(e) => {
                        tracing::warn!("io_uring queue {}: {e}", self.q);
                        break;
                    }
                }
                done.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
            }
            for (data, res) in done.drain(..) {
                if data == STOP {
                    if !handover.load(Ordering::Relaxed) {
                        // Unmounting, or a supervised server stopping: answer what we hold.
                        self.live = 0;
                        continue;
                    }
                    stopping = true;
                    let ts = types::Timespec::new().nsec(FILL.as_nanos() as u32);
                    let t = opcode::Timeout::new(&ts).build().user_data(FILLED);
                    // The timespec is read when the SQE is submitted, right here.
                    if self
                        .push(t.into())
                        .and_then(|()| self.ring.submit().map(|_| ()))
                        .is_err()
                    {
                        deadline_passed = true;
                    }
                    continue;
                }
                if data == FILLED {
                    deadline_passed = true;
                    continue;
                }
                let i = data as usize;
                if res == -libc::ENOENT {
                    // The commit found no such request (its reader went away, or, adopted
                    // from a predecessor, it had been answered): the kernel no longer uses
                    // the entry's buffers, so register them afresh.
                    let sqe = self.register(i);
                    if let Err(e) = self.push(sqe) {
                        tracing::warn!("io_uring queue {}: {e}", self.q);
                        self.live = self.live.saturating_sub(1);
                    }
                    continue;
                }
                if res < 0 {
                    self.live = self.live.saturating_sub(1);
                    match -res {
                        libc::ENOTCONN | libc::ECANCELED | libc::ECONNABORTED => {}
                        e => tracing::warn!(
                            "io_uring queue {} entry {i}: {}",
                            self.q,
                            io::Error::from_raw_os_error(e)
                        ),
                    }
                    continue;
                }
                if stopping {
                    // Left as the kernel wrote it, id included: the successor answers it.
                    held += 1;
                    continue;
                }
                let sqe = self.answer(server, i);
                if let Err(e) = self.push(sqe) {
                    tracing::warn!("io_uring queue {}: {e}", self.q);
                }
            }
        }
        if let Err(e) = self.ring.submit() {
            tracing::warn!("io_uring queue {}: {e}", self.q);
        }
        if stopping {
            if held < self.live {
                tracing::debug!(
                    "io_uring queue {}: {} idle entr(ies) cancelled at the hand-over",
                    self.q,
                    self.live - held
                );
            }
            // Close the ring while this thread lives, so that its task work (the copy of a
            // request the kernel gave an entry just before) runs here, not in a dying task.
            drop(self.ring);
            std::thread::sleep(LINGER);
        }
    }
}

/// How long a hand-over waits for every entry of a queue to hold a request (the kernel then
/// has no idle entry it could hand a request to while the ring closes). An idle queue's
/// entries are cancelled after that; a request arriving in the microseconds the cancel takes
/// would fail (`ECANCELED`).
const FILL: Duration = Duration::from_millis(20);
/// `user_data` of the hand-over's fill timeout.
const FILLED: u64 = u64::MAX - 1;

/// `struct fuse_uring_cmd_req`: flags, commit_id, qid (in the SQE's 80 command bytes).
fn cmd(commit_id: u64, q: usize) -> [u8; 80] {
    let mut c = [0u8; 80];
    c[8..16].copy_from_slice(&commit_id.to_le_bytes());
    c[16..18].copy_from_slice(&(q as u16).to_le_bytes());
    c
}

/// Set `sqe->len` (the io-uring crate's `UringCmd80` has no field for it; REGISTER takes
/// the iovec count there).
fn with_len(sqe: squeue::Entry128, len: u32) -> squeue::Entry128 {
    // SAFETY: Entry128 is repr(C): the 64-byte io_uring_sqe then 64 command bytes, plain
    // data for which any bytes are valid; `len` is the u32 at offset 24 of io_uring_sqe.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute(sqe) };
    raw[24..28].copy_from_slice(&len.to_le_bytes());
    // SAFETY: as above.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

/// Pin the calling thread to `cpu` (the kernel picks the queue by the caller's CPU; a thread
/// serving it elsewhere would cost the cross-CPU wake-up the ring is there to avoid).
fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    let r = set
        .set(cpu)
        .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set));
    if let Err(e) = r {
        tracing::debug!("cannot pin the io_uring thread to CPU {cpu}: {e}");
    }
}

/// An empty memfd for the ring buffers, which a supervisor holds and passes to each child
/// ([`URING_FD_ENV`]): the first lays it out, each successor answers what the killed one's
/// entries hold (only those the kernel had copied: see the module doc).
pub fn empty_memfd() -> io::Result<File> {
    nix::sys::memfd::memfd_create(c"lxcfs-uring", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map(File::from)
        .map_err(io::Error::from)
}

/// An inherited ring memfd from the environment ([`URING_FD_ENV`]); consumes the variable.
pub fn take_inherited() -> Option<File> {
    let v = std::env::var(URING_FD_ENV).ok()?;
    std::env::remove_var(URING_FD_ENV);
    let fd: RawFd = v.parse().ok()?;
    // SAFETY: only borrowed to check the number is an open fd before owning it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    nix::fcntl::fcntl(borrowed, nix::fcntl::FcntlArg::F_GETFD).ok()?;
    // SAFETY: the predecessor left this fd open for us and nothing else owns it (the
    // variable is consumed).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    Some(File::from(owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_reply_gets_the_flag_only_when_offered() {
        let mut req = vec![0u8; IN_HEADER + 64];
        let mut reply = vec![0u8; OUT_HEADER + 64];
        assert!(!patch_init(&req, &mut reply), "not offered");
        req[IN_HEADER + 12..IN_HEADER + 16].copy_from_slice(&INIT_EXT.to_le_bytes());
        req[IN_HEADER + 16..IN_HEADER + 20].copy_from_slice(&OVER_IO_URING2.to_le_bytes());
        assert!(patch_init(&req, &mut reply));
        assert_eq!(u32_le(&reply[OUT_HEADER + 12..]) & INIT_EXT, INIT_EXT);
        assert_eq!(u32_le(&reply[OUT_HEADER + 32..]), OVER_IO_URING2);
        let mut error = vec![0u8; OUT_HEADER];
        error[4..8].copy_from_slice(&(-libc::EPROTO).to_le_bytes());
        assert!(
            !patch_init(&req, &mut error),
            "an error reply stays as it is"
        );
    }

    #[test]
    fn commands_and_lengths_are_laid_out_like_the_kernel_s() {
        let c = cmd(0x1122, 3);
        assert_eq!(u64_le(&c[8..16]), 0x1122);
        assert_eq!(c[16], 3);
        let sqe = opcode::UringCmd80::new(types::Fd(7), CMD_REGISTER).build();
        let raw: [u8; 128] = {
            let s = with_len(sqe, 2);
            // SAFETY: as in with_len.
            unsafe { std::mem::transmute(s) }
        };
        assert_eq!(u32_le(&raw[24..28]), 2);
        assert_eq!(raw[0], 46, "IORING_OP_URING_CMD");
    }

    #[test]
    fn possible_cpus_parses() {
        assert!(!possible_cpus().is_empty());
    }

    #[test]
    fn buffers_are_adopted_at_the_same_address() {
        let b = Buffers::create(2).unwrap();
        let f = b.file.try_clone().unwrap();
        let base = b.base as usize;
        // SAFETY: an entry header of our own buffers.
        unsafe { std::ptr::write_volatile(b.entry(1, 2).add(COMMIT_ID).cast::<u64>(), 42) };
        drop(b);
        let a = Buffers::adopt(f).unwrap();
        assert_eq!(a.base as usize, base);
        assert_eq!(a.pending(1, 2), Some(42));
        assert_eq!(a.pending(0, 0), None);
    }
}
