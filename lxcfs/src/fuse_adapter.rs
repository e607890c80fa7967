//! The FUSE protocol and the mount, through fuse-backend-rs: the only module that knows the
//! FUSE crate.
//!
//! [`FuseFs`] translates FUSE requests into calls on the core ([`Lxcfs`]) and its
//! [`FsError`]s into errnos; [`Mounted`] owns a served `/dev/fuse` connection and the worker
//! threads; [`HeldMount`] is the supervisor's mount, held but served by its children;
//! [`prepare_mountpoint`] clears a dead mount before mounting. fuse-backend-rs was chosen
//! over fuser because it can adopt a live `/dev/fuse` fd and send `FUSE_NOTIFY_RESEND` (the
//! project's design, `shared/design.md`): keeping the connection in one place is what a
//! hand-over to a successor (`crate::handover`) needs.
//!
//! Requests in flight at a hand-over: where the kernel resends them (`FUSE_NOTIFY_RESEND`,
//! Linux ≥ 6.9: `FUSE_HAS_RESEND` at `FUSE_INIT`, or the resend notification accepted by an
//! adopted connection) the successor asks for them. Where it cannot, a live upgrade first
//! [drains](Mounted::drain) them — the workers stop taking requests and finish the ones they
//! have, so nothing is left half-served — and each worker reads its requests straight into
//! its slot of the [`Journal`], from which a crashed server's successor
//! [replays](Mounted::adopt) them. The workers' loop is ours (not fuse-backend-rs's
//! `FuseChannel`) for that: a request must land in the journal's shared memory, not in a
//! private buffer.
//!
//! Files are opened `DIRECT_IO | NOFLUSH` (`open_options`); `flush` is not implemented
//! either (an old kernel that ignores `NOFLUSH` stops sending FLUSH after its `ENOSYS`).

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuse_backend_rs::abi::fuse_abi::{stat64, statvfs64};
use fuse_backend_rs::api::filesystem::{
    Context, DirEntry as FuseDirEntry, Entry, FileSystem, FsOptions, OpenOptions, ZeroCopyWriter,
};
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::transport::{FuseBuf, FuseDevWriter, FuseSession, Reader};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::caller::Caller;
use crate::error::{FsError, StartError};
use crate::fs::{Attr, Kind, Lxcfs};
use crate::journal::{Journal, Pending, SLOT};

pub mod uring;
use uring::{Capture, Rings};

fn errno(e: FsError) -> io::Error {
    if matches!(e.errno, libc::ENOENT) {
        tracing::trace!("{e}");
    } else {
        tracing::debug!("{e}");
    }
    io::Error::from_raw_os_error(e.errno)
}

fn caller(ctx: &Context) -> Caller {
    Caller {
        pid: u32::try_from(ctx.pid).unwrap_or(0),
        uid: ctx.uid,
        gid: ctx.gid,
    }
}

fn stat_of(a: &Attr) -> stat64 {
    // SAFETY: stat64 is a plain C struct for which all-zero bytes are a valid value.
    let mut st: stat64 = unsafe { std::mem::zeroed() };
    let fmt = match a.kind {
        Kind::Dir => libc::S_IFDIR,
        Kind::File => libc::S_IFREG,
        Kind::Symlink => libc::S_IFLNK,
    };
    st.st_ino = a.ino;
    st.st_mode = fmt | a.perm;
    st.st_uid = a.uid;
    st.st_gid = a.gid;
    st.st_size = i64::try_from(a.size).unwrap_or(i64::MAX);
    st.st_nlink = u64::from(a.nlink);
    st.st_blksize = 4096;
    st.st_mtime = a.mtime;
    st.st_ctime = a.mtime;
    st.st_atime = a.mtime;
    st
}

fn dtype(k: Kind) -> u32 {
    u32::from(match k {
        Kind::Dir => libc::DT_DIR,
        Kind::File => libc::DT_REG,
        Kind::Symlink => libc::DT_LNK,
    })
}

/// Whether the kernel resends, to a successor, what a server read but did not answer.
#[derive(Debug)]
struct Resend {
    /// May `FUSE_NOTIFY_RESEND` be used (false: a test behaves as on a kernel before 6.9)?
    allowed: bool,
    /// Does it work on this connection (learnt at `FUSE_INIT`, or from the notification)?
    works: AtomicBool,
}

impl Resend {
    fn works(&self) -> bool {
        self.works.load(Ordering::Relaxed)
    }
}

/// `FOPEN_NOFLUSH` (`fuse_kernel.h`, 7.31): no FLUSH at `close()`. fuse-backend-rs 0.14's
/// `OpenOptions` does not name it.
const FOPEN_NOFLUSH: u32 = 1 << 5;

/// How every file is opened. Generated content has no stable size and differs per caller:
/// `DIRECT_IO` bypasses the page cache (like lxcfs), so no rendering is ever served from one
/// container's cached pages to another. `NOFLUSH`: nothing to flush on a read-only file, so
/// `close()` costs no round trip (without it the first FLUSH of a connection costs one, whose
/// `ENOSYS` stops the rest). What the protocol does not let us drop: the READ at EOF that
/// ends every `read()` loop — a direct_io file has no size the kernel may trust, and
/// `KEEP_CACHE` or a stable size would share pages between views.
fn open_options() -> OpenOptions {
    // SAFETY: from_bits_unchecked only stores the bits; FOPEN_NOFLUSH is a valid open flag
    // the kernel understands since protocol 7.31 (older kernels ignore unknown open flags).
    unsafe { OpenOptions::from_bits_unchecked(OpenOptions::DIRECT_IO.bits() | FOPEN_NOFLUSH) }
}

/// The core, as a fuse-backend-rs filesystem.
pub struct FuseFs {
    fs: Arc<Lxcfs>,
    resend: Arc<Resend>,
}

impl FuseFs {
    fn entry(&self, a: Attr) -> Entry {
        let ttl = self.fs.ttl(a.ino);
        Entry {
            inode: a.ino,
            generation: 0,
            attr: stat_of(&a),
            attr_flags: 0,
            attr_timeout: ttl,
            entry_timeout: ttl,
        }
    }
}

impl FileSystem for FuseFs {
    type Inode = u64;
    type Handle = u64;

    fn init(&self, capable: FsOptions) -> io::Result<FsOptions> {
        let kernel = capable.contains(FsOptions::HAS_RESEND);
        let works = self.resend.allowed && kernel;
        self.resend.works.store(works, Ordering::Relaxed);
        log_resend(works, if kernel { RESEND_OFF } else { NO_RESEND });
        Ok(FsOptions::empty())
    }

    fn lookup(&self, _ctx: &Context, parent: u64, name: &CStr) -> io::Result<Entry> {
        let name = std::ffi::OsStr::from_bytes(name.to_bytes());
        self.fs
            .lookup(parent, name)
            .map(|a| self.entry(a))
            .map_err(errno)
    }

    fn forget(&self, _ctx: &Context, _inode: u64, _count: u64) {}

    fn getattr(
        &self,
        _ctx: &Context,
        inode: u64,
        _h: Option<u64>,
    ) -> io::Result<(stat64, Duration)> {
        let a = self.fs.getattr(inode).map_err(errno)?;
        Ok((stat_of(&a), self.fs.ttl(inode)))
    }

    fn readlink(&self, _ctx: &Context, inode: u64) -> io::Result<Vec<u8>> {
        self.fs
            .readlink(inode)
            .map(|p| p.as_bytes().to_vec())
            .map_err(errno)
    }

    fn open(
        &self,
        ctx: &Context,
        inode: u64,
        flags: u32,
        _fuse_flags: u32,
    ) -> io::Result<(Option<u64>, OpenOptions, Option<u32>)> {
        let fh = self
            .fs
            .open(caller(ctx), inode, flags as i32)
            .map_err(errno)?;
        Ok((Some(fh), open_options(), None))
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        ctx: &Context,
        inode: u64,
        handle: u64,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
        _lock_owner: Option<u64>,
        _flags: u32,
    ) -> io::Result<usize> {
        let bytes = self
            .fs
            .read_inode(caller(ctx), inode, handle, offset, size)
            .map_err(errno)?;
        w.write_all(&bytes)?;
        Ok(bytes.len())
    }

    #[allow(clippy::too_many_arguments)]
    fn release(
        &self,
        _ctx: &Context,
        _inode: u64,
        _flags: u32,
        handle: u64,
        _flush: bool,
        _flock_release: bool,
        _lock_owner: Option<u64>,
    ) -> io::Result<()> {
        self.fs.release(handle);
        Ok(())
    }

    fn statfs(&self, _ctx: &Context, _inode: u64) -> io::Result<statvfs64> {
        // SAFETY: statvfs64 is a plain C struct for which all-zero bytes are a valid value.
        let mut st: statvfs64 = unsafe { std::mem::zeroed() };
        st.f_namemax = 255;
        st.f_bsize = 4096;
        st.f_flag = libc::ST_RDONLY;
        Ok(st)
    }

    fn opendir(
        &self,
        _ctx: &Context,
        inode: u64,
        _flags: u32,
    ) -> io::Result<(Option<u64>, OpenOptions)> {
        match self.fs.getattr(inode).map_err(errno)?.kind {
            Kind::Dir => Ok((Some(0), OpenOptions::empty())),
            _ => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
        }
    }

    fn readdir(
        &self,
        _ctx: &Context,
        inode: u64,
        _handle: u64,
        _size: u32,
        offset: u64,
        add_entry: &mut dyn FnMut(FuseDirEntry) -> io::Result<usize>,
    ) -> io::Result<()> {
        let mut all = vec![
            (inode, b".".to_vec(), Kind::Dir),
            (self.fs.parent_of(inode), b"..".to_vec(), Kind::Dir),
        ];
        all.extend(
            self.fs
                .readdir(inode)
                .map_err(errno)?
                .into_iter()
                .map(|e| (e.ino, e.name.as_bytes().to_vec(), e.kind)),
        );
        for (i, (ino, name, kind)) in all
            .iter()
            .enumerate()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        {
            let e = FuseDirEntry {
                ino: *ino,
                offset: i as u64 + 1,
                type_: dtype(*kind),
                name,
            };
            if add_entry(e)? == 0 {
                break;
            }
        }
        Ok(())
    }

    fn releasedir(&self, _ctx: &Context, _inode: u64, _flags: u32, _handle: u64) -> io::Result<()> {
        Ok(())
    }

    fn access(&self, ctx: &Context, inode: u64, mask: u32) -> io::Result<()> {
        self.fs.access(caller(ctx), inode, mask).map_err(errno)
    }
}

/// A new session mounted on `mountpoint`: read-only, `allow_other`, `default_permissions`,
/// type `fuse.lxcfs`, source `lxcfs`.
fn mount_session(mountpoint: &Path) -> io::Result<FuseSession> {
    let mut session = FuseSession::new(mountpoint, "lxcfs", "lxcfs", true).map_err(fail)?;
    session.set_allow_other(true);
    session.mount().map_err(fail)?;
    Ok(session)
}

/// Say once how requests in flight survive a hand-over on this connection: `works` if the
/// kernel resends them, else `why` not.
fn log_resend(works: bool, why: &str) {
    if works {
        tracing::debug!(
            "the kernel resends unanswered requests to a successor (FUSE_NOTIFY_RESEND)"
        );
    } else {
        tracing::info!(
            "{why}: live upgrades drain the requests in flight first; the successor of a \
             crashed server replays its unanswered ones from the journal"
        );
    }
}

const NO_RESEND: &str = "no FUSE_NOTIFY_RESEND (Linux < 6.9)";
const RESEND_OFF: &str = "FUSE_NOTIFY_RESEND turned off (test)";

/// How a connection is served.
#[derive(Debug)]
pub struct Serving {
    /// Worker threads.
    pub threads: usize,
    /// May `FUSE_NOTIFY_RESEND` be used where the kernel has it (`crate::kernel`)?
    pub resend: bool,
    /// The journal of requests being served (used where the kernel cannot resend).
    pub journal: Option<Journal>,
    /// Serve over io_uring ([`uring`]): negotiate it at `FUSE_INIT` (or, for an adopted
    /// connection, register at once).
    pub io_uring: bool,
    /// A predecessor's io_uring buffers (live upgrade), whose requests are answered first.
    pub uring_buffers: Option<File>,
}

/// A mounted filesystem and its worker threads.
pub struct Mounted {
    /// For an adopted connection the session's own mount point is a stand-in (see
    /// [`Mounted::adopt`]), so it must never unmount it: never dropped, we unmount ourselves.
    session: ManuallyDrop<FuseSession>,
    workers: Vec<JoinHandle<()>>,
    mountpoint: PathBuf,
    server: Arc<Server<FuseFs>>,
    threads: usize,
    resend: Arc<Resend>,
    journal: Option<Arc<Journal>>,
    /// The journal slot of the next worker started (each worker has its own).
    next_slot: usize,
    /// Written to stop the current workers (each watches it beside the connection).
    stop: Arc<EventFd>,
    /// The io_uring transport, if asked for (it serves once started).
    rings: Option<Arc<Rings>>,
}

impl Mounted {
    /// Mount `fs` on `mountpoint` (see `mount_session`) and serve it.
    pub fn mount(fs: Arc<Lxcfs>, mountpoint: &Path, serving: Serving) -> io::Result<Mounted> {
        let session = mount_session(mountpoint)?;
        Self::serve_session(fs, session, mountpoint, serving, false)
    }

    /// Serve a live connection handed over by a predecessor (or a supervisor, or systemd),
    /// mounted at `mountpoint`. The requests the predecessor had read but not answered are
    /// served first: the kernel resends them (`FUSE_NOTIFY_RESEND`), or, where it cannot,
    /// they are replayed from the journal.
    pub fn adopt(
        fs: Arc<Lxcfs>,
        fuse: File,
        mountpoint: &Path,
        serving: Serving,
    ) -> io::Result<Mounted> {
        // FuseSession::new canonicalises (stats) its path; the live mount point would wait on
        // us. Its path only matters for unmounting, which we do ourselves.
        let stand_in = mountpoint.parent().unwrap_or(Path::new("/"));
        let mut session = FuseSession::new(stand_in, "lxcfs", "lxcfs", true).map_err(fail)?;
        session.set_fuse_file(fuse);
        Self::serve_session(fs, session, mountpoint, serving, true)
    }

    fn serve_session(
        fs: Arc<Lxcfs>,
        session: FuseSession,
        mountpoint: &Path,
        serving: Serving,
        adopted: bool,
    ) -> io::Result<Mounted> {
        let resend = Arc::new(Resend {
            allowed: serving.resend,
            works: AtomicBool::new(false),
        });
        let server = Arc::new(Server::new(FuseFs {
            fs,
            resend: resend.clone(),
        }));
        let mut m = Mounted {
            session: ManuallyDrop::new(session),
            workers: Vec::new(),
            mountpoint: mountpoint.to_path_buf(),
            server,
            threads: serving.threads.max(1),
            resend,
            journal: serving.journal.map(Arc::new),
            next_slot: 0,
            stop: Arc::new(stop_event()?),
            rings: None,
        };
        // Workers wait in epoll and must never block in read() (another may have taken the
        // request); mount() sets this, an inherited fd has it from its mount, made sure here.
        if let Some(f) = m.fuse() {
            use nix::fcntl::{fcntl, FcntlArg, OFlag};
            let r = fcntl(f, FcntlArg::F_GETFL).and_then(|fl| {
                fcntl(
                    f,
                    FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
                )
            });
            if let Err(e) = r {
                tracing::warn!("cannot make the connection non-blocking: {e}");
            }
        }
        if adopted {
            // Before any worker of ours reads a request: what is unanswered is the
            // predecessor's.
            let kernel = m.resend.allowed && m.notify_resend();
            m.resend.works.store(kernel, Ordering::Relaxed);
            log_resend(
                kernel,
                if m.resend.allowed {
                    NO_RESEND
                } else {
                    RESEND_OFF
                },
            );
        }
        // What a predecessor left unanswered, taken out of the journal *before* serving it:
        // each is replayed once, so a request that kills its server (a bug; panics abort)
        // cannot kill every successor in turn.
        let pending = match &m.journal {
            Some(j) if adopted && !m.resend.works() => j.pending().unwrap_or_else(|e| {
                tracing::warn!("cannot read the request journal: {e}");
                Vec::new()
            }),
            _ => Vec::new(),
        };
        if let Some(j) = &m.journal {
            if let Err(e) = j.reset(m.threads) {
                tracing::warn!("request journal: {e}");
            }
        }
        m.replay(&pending);
        let rings = match serving.io_uring {
            true => Rings::new(m.server.clone(), m.fuse_fd(), serving.uring_buffers)
                .map_err(|e| tracing::error!("io_uring: {e}; serving the classic way"))
                .ok(),
            false => None,
        };
        if let Some(rings) = rings {
            let rings = Arc::new(rings);
            if adopted {
                // FUSE_INIT is behind us (else the kernel says EAGAIN and the classic loop
                // starts the rings when it answers FUSE_INIT).
                match rings.start() {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                    Err(e) => tracing::warn!(
                        "io_uring: the kernel refused the rings ({e}); serving the classic way"
                    ),
                }
            }
            m.rings = Some(rings);
        }
        if let Err(e) = m.start_workers() {
            if !adopted {
                let _ = m.unmount();
            } else {
                m.detach();
            }
            return Err(e);
        }
        Ok(m)
    }

    /// Ask the kernel to resend what was read and not answered; false if it cannot (before
    /// 6.9 the notification is unknown: `EINVAL`).
    fn notify_resend(&self) -> bool {
        let mut buf = [0u8; 64];
        let r = FuseDevWriter::<()>::new(self.fuse_fd(), &mut buf)
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|w| {
                self.server
                    .notify_resend(w)
                    .map_err(|e| io::Error::other(e.to_string()))
            });
        match r {
            Ok(()) => {
                tracing::debug!("asked the kernel to resend unanswered requests");
                true
            }
            Err(e) => {
                tracing::debug!("FUSE_NOTIFY_RESEND: {e}");
                false
            }
        }
    }

    /// Serve the requests a predecessor read into the journal and did not answer (see
    /// `crate::journal`).
    fn replay(&self, pending: &[Pending]) {
        let Some(fuse) = self.fuse() else {
            return;
        };
        let mut reply = vec![0u8; self.session.bufsize()];
        for p in pending {
            let mut request = p.request.clone();
            let r = handle(&self.server, fuse.as_raw_fd(), &mut request, &mut reply);
            // An error here is mostly the kernel's "no such request": the predecessor had
            // answered it after all, or its reader is gone.
            tracing::debug!("replayed request {} (opcode {}): {r:?}", p.unique, p.opcode);
        }
        if !pending.is_empty() {
            tracing::info!(
                "replayed {} request(s) a previous server had read and not answered",
                pending.len()
            );
        }
    }

    fn start_workers(&mut self) -> io::Result<()> {
        let fuse = self
            .session
            .get_fuse_file()
            .ok_or_else(|| io::Error::other("no connection"))?;
        for _ in 0..self.threads {
            let slot = self.next_slot;
            self.next_slot += 1;
            let channel = Channel::new(fuse, self.stop.clone())?;
            let (server, journal) = (self.server.clone(), self.journal.clone());
            let reply = self.session.bufsize();
            let rings = self.rings.clone();
            let w = std::thread::Builder::new()
                .name(format!("fuse-{slot}"))
                .spawn(move || {
                    serve(
                        &server,
                        &channel,
                        journal.as_deref(),
                        slot,
                        reply,
                        rings.as_deref(),
                    )
                })?;
            self.workers.push(w);
        }
        Ok(())
    }

    /// Does the kernel resend unanswered requests to a successor on this connection?
    pub fn kernel_resends(&self) -> bool {
        self.resend.works()
    }

    /// Stop taking requests and let the workers finish the ones they hold, for at most
    /// `timeout`; returns how many workers had not finished by then (their requests stay in
    /// the journal for the successor). Requests not yet taken wait in the kernel. Before a
    /// hand-over on a kernel that cannot resend; [`Mounted::resume`] serves again.
    pub fn drain(&mut self, timeout: Duration) -> usize {
        let rings = self.rings.as_ref().map_or(0, |r| r.drain(timeout));
        if rings > 0 {
            tracing::warn!("{rings} io_uring thread(s) still answering after {timeout:?}");
        }
        self.wake();
        let deadline = Instant::now() + timeout;
        while self.workers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (done, stuck): (Vec<_>, Vec<_>) =
            self.workers.drain(..).partition(JoinHandle::is_finished);
        for w in done {
            let _ = w.join();
        }
        // A stuck worker finishes its request and then stops by itself (it was woken).
        stuck.len()
    }

    /// Serve again after [`Mounted::drain`] (the hand-over failed).
    pub fn resume(&mut self) -> io::Result<()> {
        // The old event stays set for any worker still finishing its request.
        self.stop = Arc::new(stop_event()?);
        if let Some(r) = &self.rings {
            if let Err(e) = r.resume() {
                tracing::warn!("io_uring: cannot serve again ({e}); serving the classic way");
            }
        }
        self.start_workers()
    }

    /// Is the io_uring transport serving? (A live upgrade must then drain the rings.)
    pub fn uses_io_uring(&self) -> bool {
        self.rings.as_ref().is_some_and(|r| r.active())
    }

    /// The io_uring buffers' memfd, to hand over (with [`Mounted::uses_io_uring`]).
    pub fn uring_fd(&self) -> Option<BorrowedFd<'_>> {
        self.rings.as_deref().map(Rings::fd)
    }

    /// Tell the current workers to stop once they have answered what they hold.
    fn wake(&self) {
        if let Err(e) = self.stop.write(1) {
            tracing::warn!("cannot stop the FUSE workers: {e}");
        }
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The `/dev/fuse` fd of the connection (to hand over or to store).
    pub fn fuse_fd(&self) -> RawFd {
        self.fuse().map_or(-1, |f| f.as_raw_fd())
    }

    /// The `/dev/fuse` connection, borrowed (to hand over to a successor).
    pub fn fuse(&self) -> Option<BorrowedFd<'_>> {
        self.session.get_fuse_file().map(AsFd::as_fd)
    }

    /// The request journal's memfd, to hand over.
    pub fn journal_fd(&self) -> Option<BorrowedFd<'_>> {
        self.journal.as_deref().map(Journal::fd)
    }

    /// True while at least one worker is serving (they stop when the mount goes away).
    pub fn is_serving(&self) -> bool {
        self.workers.iter().any(|w| !w.is_finished())
    }

    fn stop_workers(&mut self) {
        if let Some(r) = &self.rings {
            r.stop();
        }
        self.wake();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }

    /// Stop serving but leave the mount and the connection alone (a supervised server: the
    /// supervisor holds both and starts a successor).
    pub fn detach(mut self) {
        self.stop_workers();
    }

    /// Unmount (lazily, so busy bind mounts do not block it) and join the workers.
    pub fn unmount(mut self) -> io::Result<()> {
        self.wake();
        let r = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH)
            .map_err(io::Error::from);
        // The session stays in its ManuallyDrop, never dropped: dropping it would unmount its
        // own path again (for an adopted connection, a stand-in directory that must not be
        // touched). Its fd closes when we exit.
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(rings) = &self.rings {
            rings.stop();
        }
        r
    }
}

/// The supervisor's mount (`--supervise`): mounted and held, served by the children it
/// starts with the connection's fd. While no child serves, requests wait in the kernel.
pub struct HeldMount {
    session: FuseSession,
    fuse: RawFd,
}

impl HeldMount {
    /// Mount on `mountpoint` (see `mount_session`) without serving.
    pub fn mount(mountpoint: &Path) -> io::Result<HeldMount> {
        let session = mount_session(mountpoint)?;
        let fuse = session
            .get_fuse_file()
            .map(std::os::fd::AsRawFd::as_raw_fd)
            .ok_or_else(|| io::Error::other("mounted without a connection"))?;
        Ok(HeldMount { session, fuse })
    }

    /// The `/dev/fuse` fd of the connection, for the servers.
    pub fn fuse_fd(&self) -> RawFd {
        self.fuse
    }

    /// Unmount.
    pub fn unmount(mut self) -> io::Result<()> {
        self.session.umount().map_err(fail)
    }
}

/// Check the mount point is a directory. A dead FUSE mount on it (its daemon died and no one
/// kept the connection: "transport endpoint is not connected") is unmounted first, as
/// lxcfs's unit does with `fusermount -u` after a stop. Right after a daemon over io_uring
/// died, the probe gets `ECONNABORTED` instead: the kernel tears its rings down in a worker,
/// so the connection is aborted only after the daemon is reaped, and the probe was queued
/// before that (a restart at once, as a supervisor does, failed every time).
pub fn prepare_mountpoint(mp: &Path) -> Result<(), StartError> {
    // statfs asks the filesystem itself; a stat could be answered from cached attributes.
    let probe = nix::sys::statfs::statfs(mp)
        .map_err(io::Error::from)
        .and_then(|_| std::fs::metadata(mp));
    match probe {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(StartError::new(format!(
            "{} is not a directory",
            mp.display()
        ))),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTCONN | libc::ECONNABORTED)) => {
            tracing::warn!("{} is a dead FUSE mount ({e}); unmounting it", mp.display());
            nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
                StartError::new(format!(
                    "{} is a dead FUSE mount and unmounting it failed ({e}): run `umount -l {}`",
                    mp.display(),
                    mp.display()
                ))
            })?;
            prepare_mountpoint(mp)
        }
        Err(e) => Err(StartError::new(format!("mountpoint {}: {e}", mp.display()))),
    }
}

fn fail(e: fuse_backend_rs::transport::Error) -> io::Error {
    io::Error::other(e.to_string())
}

/// The stop event of a set of workers.
fn stop_event() -> io::Result<EventFd> {
    EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC).map_err(io::Error::from)
}

/// Serve one request, read into `request`: the reply goes to the connection `fd` through
/// `reply` (a buffer as large as the largest reply).
fn handle(
    server: &Server<FuseFs>,
    fd: RawFd,
    request: &mut [u8],
    reply: &mut [u8],
) -> Result<(), String> {
    let reader =
        Reader::<()>::from_fuse_buffer(FuseBuf::new(request)).map_err(|e| e.to_string())?;
    let writer = FuseDevWriter::<()>::new(fd, reply).map_err(|e| e.to_string())?;
    server
        .handle_message(reader, writer.into(), None, None)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

const FUSE_EVENT: u64 = 1;
const STOP_EVENT: u64 = 2;

/// One worker's side of the connection: the `/dev/fuse` fd (a duplicate: the same open file,
/// so the same kernel queues) and an epoll on it and on the stop event.
struct Channel {
    fuse: File,
    epoll: Epoll,
    /// Kept open while the epoll watches it.
    _stop: Arc<EventFd>,
}

impl Channel {
    fn new(fuse: &File, stop: Arc<EventFd>) -> io::Result<Channel> {
        let fuse = fuse.try_clone()?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(&fuse, EpollEvent::new(EpollFlags::EPOLLIN, FUSE_EVENT))?;
        epoll.add(&*stop, EpollEvent::new(EpollFlags::EPOLLIN, STOP_EVENT))?;
        Ok(Channel {
            fuse,
            epoll,
            _stop: stop,
        })
    }

    /// Read the next request into `buf`; `None` once told to stop (the stop event is never
    /// consumed, so every worker sees it) or when the connection is gone.
    fn next(&self, buf: &mut [u8]) -> Option<usize> {
        let mut events = [EpollEvent::empty(); 2];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!("fuse worker: epoll_wait: {e}");
                    return None;
                }
            };
            let events = &events[..n];
            if events.iter().any(|e| e.data() == STOP_EVENT) {
                return None;
            }
            if events.iter().any(|e| {
                e.events()
                    .intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP)
            }) {
                tracing::info!("fuse channel closed");
                return None;
            }
            match nix::unistd::read(&self.fuse, buf) {
                Ok(n) => return Some(n),
                // Another worker took it (EAGAIN), its reader gave up (ENOENT), a signal.
                Err(Errno::EAGAIN | Errno::ENOENT | Errno::EINTR) => continue,
                Err(Errno::ENODEV) => {
                    tracing::info!("fuse filesystem unmounted");
                    return None;
                }
                Err(e) => {
                    tracing::info!("fuse channel closed: {e}");
                    return None;
                }
            }
        }
    }
}

/// A worker: read each request into slot `slot` of the journal (a private buffer without
/// one), serve it, clear the slot.
fn serve(
    server: &Server<FuseFs>,
    channel: &Channel,
    journal: Option<&Journal>,
    slot: usize,
    reply_size: usize,
    rings: Option<&Rings>,
) {
    let capture = rings.map(|_| Capture);
    let mut mapped = journal.and_then(|j| {
        j.slot(slot)
            .map_err(|e| tracing::warn!("journal slot {slot}: {e}; serving without it"))
            .ok()
    });
    let mut private = if mapped.is_none() {
        vec![0u8; SLOT]
    } else {
        Vec::new()
    };
    let mut reply = vec![0u8; reply_size];
    let fd = channel.fuse.as_raw_fd();
    loop {
        let buf = match &mut mapped {
            Some(s) => s.buf(),
            None => &mut private[..],
        };
        let Some(n) = channel.next(buf) else {
            return;
        };
        let init = buf.get(4..8) == Some(&uring::FUSE_INIT.to_le_bytes()[..]);
        if let (true, Some(rings), Some(capture)) = (init, rings, &capture) {
            init_over_io_uring(server, fd, &mut buf[..n], &mut reply, rings, capture);
        } else if let Err(e) = handle(server, fd, &mut buf[..n], &mut reply) {
            // A reader that went away mid-request makes the reply fail (ENOENT from
            // /dev/fuse): nothing to do but carry on.
            tracing::debug!("fuse request: {e}");
        }
        if let Some(s) = &mut mapped {
            s.done();
        }
    }
}

/// Answer `FUSE_INIT` with `FUSE_OVER_IO_URING` added (if the kernel offered it: the host's
/// knob), then start the rings.
fn init_over_io_uring(
    server: &Server<FuseFs>,
    fd: RawFd,
    request: &mut [u8],
    reply: &mut [u8],
    rings: &Rings,
    capture: &Capture,
) {
    let len = capture.serve(server, request, reply);
    if len == 0 {
        tracing::warn!("FUSE_INIT: no reply to send");
        return;
    }
    let offered = uring::patch_init(request, &mut reply[..len]);
    if let Err(e) = nix::unistd::write(
        // SAFETY: the connection's fd, open for as long as the worker runs.
        unsafe { BorrowedFd::borrow_raw(fd) },
        &reply[..len],
    ) {
        tracing::warn!("FUSE_INIT reply: {e}");
        return;
    }
    if !offered {
        tracing::warn!(
            "the kernel did not offer FUSE over io_uring ({} is not Y?): serving the classic way \
             (one worker unless --threads says more)",
            uring::KNOB
        );
        return;
    }
    if let Err(e) = rings.start() {
        tracing::warn!("io_uring: the kernel refused the rings ({e}); serving the classic way");
    }
}
