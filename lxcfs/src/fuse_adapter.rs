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
//! `flush` is deliberately not implemented: the kernel then stops sending FLUSH, saving a
//! round trip per `close()`.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use fuse_backend_rs::abi::fuse_abi::{stat64, statvfs64};
use fuse_backend_rs::api::filesystem::{
    Context, DirEntry as FuseDirEntry, Entry, FileSystem, FsOptions, OpenOptions, ZeroCopyWriter,
};
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::transport::{FuseChannel, FuseDevWriter, FuseSession};

use crate::caller::Caller;
use crate::error::{FsError, StartError};
use crate::fs::{Attr, Kind, Lxcfs};

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

/// The core, as a fuse-backend-rs filesystem.
pub struct FuseFs(pub Arc<Lxcfs>);

impl FuseFs {
    fn entry(&self, a: Attr) -> Entry {
        let ttl = self.0.ttl(a.ino);
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

    fn init(&self, _capable: FsOptions) -> io::Result<FsOptions> {
        Ok(FsOptions::empty())
    }

    fn lookup(&self, _ctx: &Context, parent: u64, name: &CStr) -> io::Result<Entry> {
        let name = std::ffi::OsStr::from_bytes(name.to_bytes());
        self.0
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
        let a = self.0.getattr(inode).map_err(errno)?;
        Ok((stat_of(&a), self.0.ttl(inode)))
    }

    fn readlink(&self, _ctx: &Context, inode: u64) -> io::Result<Vec<u8>> {
        self.0
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
            .0
            .open(caller(ctx), inode, flags as i32)
            .map_err(errno)?;
        // Generated content has no stable size: bypass the page cache, like lxcfs.
        Ok((Some(fh), OpenOptions::DIRECT_IO, None))
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
            .0
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
        self.0.release(handle);
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
        match self.0.getattr(inode).map_err(errno)?.kind {
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
            (self.0.parent_of(inode), b"..".to_vec(), Kind::Dir),
        ];
        all.extend(
            self.0
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
        self.0.access(caller(ctx), inode, mask).map_err(errno)
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

/// A mounted filesystem and its worker threads.
pub struct Mounted {
    /// For an adopted connection the session's own mount point is a stand-in (see
    /// [`Mounted::adopt`]), so it must never unmount it: never dropped, we unmount ourselves.
    session: ManuallyDrop<FuseSession>,
    workers: Vec<JoinHandle<()>>,
    mountpoint: PathBuf,
}

impl Mounted {
    /// Mount `fs` on `mountpoint` (see `mount_session`) and serve it with `threads`
    /// workers.
    pub fn mount(fs: Arc<Lxcfs>, mountpoint: &Path, threads: usize) -> io::Result<Mounted> {
        let session = mount_session(mountpoint)?;
        Self::serve_session(fs, session, mountpoint, threads, false)
    }

    /// Serve a live connection handed over by a predecessor (or a supervisor, or systemd),
    /// mounted at `mountpoint`, and ask the kernel to resend what the predecessor had read
    /// but not answered.
    pub fn adopt(
        fs: Arc<Lxcfs>,
        fuse: File,
        mountpoint: &Path,
        threads: usize,
    ) -> io::Result<Mounted> {
        // FuseSession::new canonicalises (stats) its path; the live mount point would wait on
        // us. Its path only matters for unmounting, which we do ourselves.
        let stand_in = mountpoint.parent().unwrap_or(Path::new("/"));
        let mut session = FuseSession::new(stand_in, "lxcfs", "lxcfs", true).map_err(fail)?;
        session.set_fuse_file(fuse);
        Self::serve_session(fs, session, mountpoint, threads, true)
    }

    fn serve_session(
        fs: Arc<Lxcfs>,
        session: FuseSession,
        mountpoint: &Path,
        threads: usize,
        resend: bool,
    ) -> io::Result<Mounted> {
        let mut m = Mounted {
            session: ManuallyDrop::new(session),
            workers: Vec::new(),
            mountpoint: mountpoint.to_path_buf(),
        };
        let server = Arc::new(Server::new(FuseFs(fs)));
        for i in 0..threads.max(1) {
            let spawned = m.session.new_channel().map_err(fail).and_then(|channel| {
                let server = server.clone();
                std::thread::Builder::new()
                    .name(format!("fuse-{i}"))
                    .spawn(move || serve(server, channel))
            });
            match spawned {
                Ok(h) => m.workers.push(h),
                Err(e) => {
                    if !resend {
                        let _ = m.unmount();
                    } else {
                        m.detach();
                    }
                    return Err(e);
                }
            }
        }
        if resend {
            let fd = m.fuse_fd();
            let mut buf = [0u8; 64];
            match FuseDevWriter::<()>::new(fd, &mut buf)
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|w| {
                    server
                        .notify_resend(w)
                        .map_err(|e| io::Error::other(e.to_string()))
                }) {
                Ok(()) => tracing::debug!("asked the kernel to resend unanswered requests"),
                // Kernels before 6.9: requests the predecessor had read stay unanswered.
                Err(e) => tracing::warn!("FUSE_NOTIFY_RESEND failed: {e}"),
            }
        }
        Ok(m)
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

    /// True while at least one worker is serving (they stop when the mount goes away).
    pub fn is_serving(&self) -> bool {
        self.workers.iter().any(|w| !w.is_finished())
    }

    fn stop_workers(&mut self) {
        let _ = self.session.wake();
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
        let _ = self.session.wake();
        let r = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH)
            .map_err(io::Error::from);
        // The session stays in its ManuallyDrop, never dropped: dropping it would unmount its
        // own path again (for an adopted connection, a stand-in directory that must not be
        // touched). Its fd closes when we exit.
        for w in self.workers.drain(..) {
            let _ = w.join();
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
/// lxcfs's unit does with `fusermount -u` after a stop.
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
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            tracing::warn!(
                "{} is a dead FUSE mount (transport endpoint is not connected); unmounting it",
                mp.display()
            );
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

fn serve(server: Arc<Server<FuseFs>>, mut channel: FuseChannel) {
    loop {
        match channel.get_request() {
            Ok(Some((reader, writer))) => {
                if let Err(e) = server.handle_message(reader, writer.into(), None, None) {
                    // A reader that went away mid-request makes the reply fail (ENOENT from
                    // /dev/fuse): nothing to do but carry on.
                    tracing::debug!("fuse request: {e}");
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::info!("fuse channel closed: {e}");
                return;
            }
        }
    }
}
