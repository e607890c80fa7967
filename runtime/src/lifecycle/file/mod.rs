//! `lxr file push|pull|edit|delete`: files into and out of a container, as Incus's `file`.
//!
//! Two processes, each touching only its own side. **lxr**, the user, opens and writes the
//! user's files and copies the data. A **helper** it forks holds the container's root and
//! nothing of the user's (stdio `/dev/null`, every other descriptor closed but its channel):
//! for a running container it joins the container's user and mount namespaces and becomes its
//! root, so it sees exactly what the container sees (the rootfs may be an overlay mounted only
//! there); for a stopped one it is root of a user namespace mapping only the container's ids,
//! on the rootfs ([`Containers::with_rootfs`]). The helper resolves every container path in
//! the container's root (`RESOLVE_IN_ROOT`, no magic links; below a walk's top no symlink at
//! all) and hands lxr a descriptor of the file it opened or created ([`server`]); lxr writes a
//! pulled tree beneath its destination, no symlink followed, symlinks recreated as symlinks,
//! FIFOs and devices skipped. See `runtime/SECURITY.md`.

mod at;
mod server;
mod wire;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use nix::unistd::{fork, ForkResult, Pid};

use self::wire::{At, Entry, Kind, Meta, Rep, Req};
use super::Containers;
use crate::beneath::Dir;
use crate::channel::{self, End};
use crate::container::State;
use crate::error::{Context, Error, Result};
use crate::lock::Lock;

/// How `file push` writes.
#[derive(Debug, Clone, Default)]
pub struct Push {
    /// Owner of what is made, in the container.
    pub uid: u32,
    /// Group of what is made, in the container.
    pub gid: u32,
    /// Mode of files (default: the source's, without set-id bits; 0644 from stdin).
    pub mode: Option<u32>,
    /// Make missing parent directories (0755, `uid:gid`).
    pub parents: bool,
    /// Directories with all they hold.
    pub recursive: bool,
}

/// How `file pull` reads.
#[derive(Debug, Clone, Default)]
pub struct Pull {
    /// Make missing parent directories of the destination.
    pub parents: bool,
    /// Directories with all they hold.
    pub recursive: bool,
}

/// A file's content and how it was owned (for `file edit`).
#[derive(Debug, Clone)]
pub struct Content {
    /// The bytes.
    pub data: Vec<u8>,
    /// Owner, group and mode in the container (`None`: it does not exist yet).
    pub meta: Option<(u32, u32, u32)>,
}

/// The helper and the channel to it; dropping it ends the helper.
struct Session {
    chan: Option<End>,
    helper: Pid,
    /// A stopped container stays stopped while its rootfs is written.
    _lock: Option<Lock>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // EOF ends the helper's loop.
        self.chan = None;
        let _ = nix::sys::wait::waitpid(self.helper, None);
    }
}

impl Session {
    fn chan(&self) -> Result<&End> {
        self.chan
            .as_ref()
            .ok_or_else(|| Error::Usage("lxr file: the helper is gone".into()))
    }

    /// Ask, and get the one answer.
    fn ask(&self, r: &Req) -> Result<(Rep, Vec<OwnedFd>)> {
        wire::request(self.chan()?, r)?;
        wire::answer(self.chan()?)
    }

    fn ok(&self, r: &Req) -> Result<()> {
        match self.ask(r)?.0 {
            Rep::Ok => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    fn stat(&self, at: &At, follow: bool) -> Result<Option<Meta>> {
        match self
            .ask(&Req::Stat {
                at: at.clone(),
                follow,
            })?
            .0
        {
            Rep::Stat(m) => Ok(m),
            other => Err(unexpected(&other)),
        }
    }

    /// A descriptor (the answer to Create or Open) and the file's metadata.
    fn fd(&self, r: &Req) -> Result<(std::fs::File, Meta)> {
        match self.ask(r)? {
            (Rep::Fd(m), mut fds) if fds.len() == 1 => {
                let fd = fds.remove(0);
                Ok((std::fs::File::from(fd), m))
            }
            (other, _) => Err(unexpected(&other)),
        }
    }

    fn list(&self, at: &At) -> Result<Vec<Entry>> {
        wire::request(self.chan()?, &Req::List { at: at.clone() })?;
        let mut out = Vec::new();
        loop {
            match wire::answer(self.chan()?)?.0 {
                Rep::Entries(e) => out.extend(e),
                Rep::Ok => return Ok(out),
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// Make the directories of `path` (absolute) that are missing.
    fn mkdir_parents(&self, path: &str, uid: u32, gid: u32) -> Result<()> {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for p in parts.iter().take(parts.len().saturating_sub(1)) {
            prefix.push('/');
            prefix.push_str(p);
            self.ok(&Req::Mkdir {
                at: At::top(&prefix),
                uid,
                gid,
                mode: 0o755,
                exist_ok: true,
            })?;
        }
        Ok(())
    }
}

fn unexpected(r: &Rep) -> Error {
    Error::Usage(format!("lxr file: unexpected answer {r:?}"))
}

/// `dir` + `/` + `name`.
fn child_path(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

fn copy(from: &mut impl Read, to: &mut impl Write, what: &str) -> Result<()> {
    std::io::copy(from, to)
        .map(drop)
        .ctx(|| format!("copy {what}"))
}

impl Containers {
    /// Fork the helper for `name` (see the module's documentation).
    fn file_session(&self, name: &str) -> Result<Session> {
        self.existing(name)?;
        // Waits for a start in progress; kept while a stopped container's rootfs is used.
        let lock = Lock::container(&self.paths, name)?;
        let running = State::load(&self.paths.state(name))?;
        let (chan, helper_end) = channel::pair()?;
        let init = match &running {
            Some(s) => Some(
                cgroups::process::Pidfd::open(s.init_pid).map_err(|e| Error::Os {
                    what: format!("open the init of {name}"),
                    source: e,
                })?,
            ),
            None => None,
        };
        // SAFETY: lxr is single-threaded here (the CLI calls this first thing); the child
        // only runs lxr's code and _exits.
        match unsafe { fork() }.ctx(|| "fork".into())? {
            ForkResult::Child => {
                drop(chan);
                let r = match &init {
                    Some(init) => join_running(init, name, &helper_end),
                    None => isolate(&[helper_end.raw_fd()]).and_then(|()| {
                        self.with_rootfs(name, None, |root| server::serve(root, &helper_end))
                    }),
                };
                let code = match r {
                    Ok(()) => 0,
                    Err(e) => {
                        helper_end.fail(&e);
                        1
                    }
                };
                crate::launch::exit_forked(code)
            }
            ForkResult::Parent { child } => {
                drop(helper_end);
                Ok(Session {
                    chan: Some(chan),
                    helper: child,
                    _lock: if running.is_none() { Some(lock) } else { None },
                })
            }
        }
    }

    /// Push the host files `sources` to `target` (an absolute path) in `name`: into it when it
    /// is a directory (or ends with `/`), else as it. Warnings (what was skipped) are returned.
    pub fn file_push(
        &self,
        name: &str,
        sources: &[PathBuf],
        target: &str,
        o: &Push,
    ) -> Result<Vec<String>> {
        at::below_root(target)?;
        if sources.is_empty() {
            return Err(Error::Usage("nothing to push".into()));
        }
        let s = self.file_session(name)?;
        if o.parents {
            let dir = if target.ends_with('/') {
                format!("{target}x")
            } else {
                target.to_string()
            };
            s.mkdir_parents(&dir, o.uid, o.gid)?;
        }
        let into_dir = target.ends_with('/')
            || sources.len() > 1
            || s.stat(&At::top(target), true)?.map(|m| m.kind) == Some(Kind::Dir);
        if into_dir && target.ends_with('/') && o.parents {
            s.mkdir_parents(&format!("{target}x"), o.uid, o.gid)?;
            s.ok(&Req::Mkdir {
                at: At::top(target),
                uid: o.uid,
                gid: o.gid,
                mode: 0o755,
                exist_ok: true,
            })?;
        }
        let mut warnings = Vec::new();
        for src in sources {
            let base = src
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .ok_or_else(|| Error::Usage(format!("{}: no file name", src.display())))?;
            let dest = if into_dir {
                child_path(target, &base)
            } else {
                target.to_string()
            };
            let md = std::fs::metadata(src).ctx(|| format!("{}", src.display()))?;
            if md.is_dir() {
                if !o.recursive {
                    return Err(Error::Usage(format!(
                        "{} is a directory (-r pushes it with all it holds)",
                        src.display()
                    )));
                }
                s.ok(&Req::Mkdir {
                    at: At::top(&dest),
                    uid: o.uid,
                    gid: o.gid,
                    mode: 0o755,
                    exist_ok: true,
                })?;
                push_tree(&s, src, &At::top(&dest), o, &mut warnings)?;
            } else if !md.is_file() {
                return Err(Error::Usage(format!(
                    "{} is not a regular file",
                    src.display()
                )));
            } else {
                let mut f = std::fs::File::open(src).ctx(|| format!("open {}", src.display()))?;
                let mode = o.mode.unwrap_or(md.permissions().mode() & 0o777);
                let (mut to, _) = s.fd(&Req::Create {
                    at: At::top(&dest),
                    uid: o.uid,
                    gid: o.gid,
                    mode,
                })?;
                copy(&mut f, &mut to, &src.display().to_string())?;
            }
        }
        Ok(warnings)
    }

    /// Push what `input` holds (stdin for `-`) to the file `target` in `name`.
    pub fn file_push_from(
        &self,
        name: &str,
        input: &mut dyn Read,
        target: &str,
        o: &Push,
    ) -> Result<()> {
        at::below_root(target)?;
        if target.ends_with('/') {
            return Err(Error::Usage(format!(
                "{target}: pushing stdin needs a file name"
            )));
        }
        let s = self.file_session(name)?;
        if o.parents {
            s.mkdir_parents(target, o.uid, o.gid)?;
        }
        let (mut to, _) = s.fd(&Req::Create {
            at: At::top(target),
            uid: o.uid,
            gid: o.gid,
            mode: o.mode.unwrap_or(0o644),
        })?;
        let mut input = input;
        copy(&mut input, &mut to, "stdin")
    }

    /// Pull `sources` (absolute paths) of `name` to `dest` on the host: into it when it is a
    /// directory, else as it. Warnings (what was skipped) are returned.
    pub fn file_pull(
        &self,
        name: &str,
        sources: &[String],
        dest: &Path,
        o: &Pull,
    ) -> Result<Vec<String>> {
        for src in sources {
            at::below_root(src)?;
        }
        if o.parents {
            let dir = if sources.len() > 1 {
                dest
            } else {
                dest.parent().unwrap_or(dest)
            };
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).ctx(|| format!("mkdir {}", dir.display()))?;
            }
        }
        let into_dir = dest.is_dir();
        if sources.len() > 1 && !into_dir {
            return Err(Error::Usage(format!(
                "{} is not a directory (several files are pulled into one)",
                dest.display()
            )));
        }
        let s = self.file_session(name)?;
        let mut warnings = Vec::new();
        for src in sources {
            let at = At::top(src);
            let base = at::split(src)
                .map(|(_, n)| n)
                .unwrap_or_else(|| name.to_string());
            let to = if into_dir {
                dest.join(&base)
            } else {
                dest.to_path_buf()
            };
            let meta = s
                .stat(&at, true)?
                .ok_or_else(|| Error::Usage(format!("{name}{src}: no such file or directory")))?;
            if meta.kind == Kind::Dir {
                if !o.recursive {
                    return Err(Error::Usage(format!(
                        "{name}{src} is a directory (-r pulls it with all it holds)"
                    )));
                }
                pull_tree(&s, &at, &to, meta.mode, &mut warnings)?;
            } else {
                let (mut from, m) = s.fd(&Req::Open { at })?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .custom_flags(libc::O_NOCTTY)
                    .mode(0o600)
                    .open(&to)
                    .ctx(|| format!("create {}", to.display()))?;
                copy(&mut from, &mut f, src)?;
                f.set_permissions(std::fs::Permissions::from_mode(m.mode & 0o777))
                    .ctx(|| format!("chmod {}", to.display()))?;
            }
        }
        Ok(warnings)
    }

    /// Write the file `src` of `name` to `out` (stdout for `-`).
    pub fn file_pull_to(&self, name: &str, src: &str, out: &mut dyn Write) -> Result<()> {
        at::below_root(src)?;
        let s = self.file_session(name)?;
        let (mut from, _) = s.fd(&Req::Open { at: At::top(src) })?;
        let mut out = out;
        copy(&mut from, &mut out, src)
    }

    /// The content of `path` in `name` and how it is owned (empty and `None` if it does not
    /// exist), for `file edit`.
    pub fn file_read(&self, name: &str, path: &str) -> Result<Content> {
        at::below_root(path)?;
        let s = self.file_session(name)?;
        let at = At::top(path);
        if s.stat(&at, true)?.is_none() {
            return Ok(Content {
                data: Vec::new(),
                meta: None,
            });
        }
        let (mut from, m) = s.fd(&Req::Open { at })?;
        let mut data = Vec::new();
        from.read_to_end(&mut data).ctx(|| format!("read {path}"))?;
        Ok(Content {
            data,
            meta: Some((m.uid, m.gid, m.mode)),
        })
    }

    /// Write `data` to `path` in `name`, owned and moded as `meta` says (a new file: root's,
    /// 0644).
    pub fn file_write(
        &self,
        name: &str,
        path: &str,
        data: &[u8],
        meta: Option<(u32, u32, u32)>,
    ) -> Result<()> {
        let (uid, gid, mode) = meta.unwrap_or((0, 0, 0o644));
        self.file_push_from(
            name,
            &mut &data[..],
            path,
            &Push {
                uid,
                gid,
                mode: Some(mode),
                ..Push::default()
            },
        )
    }

    /// Delete `path` in `name`: a file, a symlink (never what it points to) or an empty
    /// directory; with `force` a directory with all it holds.
    pub fn file_delete(&self, name: &str, path: &str, force: bool) -> Result<()> {
        if at::below_root(path)? == "." {
            return Err(Error::Usage(format!("{name}/: the root is not deleted")));
        }
        let s = self.file_session(name)?;
        s.ok(&Req::Delete {
            at: At::top(path),
            recursive: force,
        })
    }
}

/// Close what the helper must not hold (everything but `keep`), stdio onto `/dev/null`, and
/// die with lxr.
fn isolate(keep: &[std::os::fd::RawFd]) -> Result<()> {
    crate::fds::null_stdio()?;
    crate::fds::keep_only(keep);
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    Ok(())
}

/// The helper of a running container: into its user and mount namespaces, as its root.
fn join_running(init: &cgroups::process::Pidfd, name: &str, chan: &End) -> Result<()> {
    isolate(&[chan.raw_fd(), init.as_fd().as_raw_fd()])?;
    // Not dumpable: nothing in the container may ptrace it or open its descriptors.
    crate::fds::not_dumpable()?;
    setns(init, CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
        .ctx(|| format!("join the namespaces of {name}"))?;
    crate::userns::become_root()?;
    // Its `/` is the container's now.
    let root = Dir::open(Path::new("/"))?;
    server::serve(&root, chan)
}

/// Push the host directory `src` into the container directory `dest` (which exists).
fn push_tree(
    s: &Session,
    src: &Path,
    dest: &At,
    o: &Push,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let mut stack = vec![(src.to_path_buf(), dest.clone())];
    while let Some((dir, at)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).ctx(|| format!("list {}", dir.display()))?;
        for e in rd {
            let e = e.ctx(|| format!("list {}", dir.display()))?;
            let path = e.path();
            let name = e.file_name();
            let sub = at.join(name.as_bytes());
            let md = std::fs::symlink_metadata(&path).ctx(|| format!("{}", path.display()))?;
            let ft = md.file_type();
            if ft.is_symlink() {
                let target =
                    std::fs::read_link(&path).ctx(|| format!("readlink {}", path.display()))?;
                s.ok(&Req::Symlink {
                    at: sub,
                    target: at::bytes(&target).to_vec(),
                    uid: o.uid,
                    gid: o.gid,
                })?;
            } else if ft.is_dir() {
                s.ok(&Req::Mkdir {
                    at: sub.clone(),
                    uid: o.uid,
                    gid: o.gid,
                    mode: md.permissions().mode() & 0o777,
                    exist_ok: true,
                })?;
                stack.push((path, sub));
            } else if ft.is_file() {
                let mut f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(&path)
                    .ctx(|| format!("open {}", path.display()))?;
                let (mut to, _) = s.fd(&Req::Create {
                    at: sub,
                    uid: o.uid,
                    gid: o.gid,
                    mode: o.mode.unwrap_or(md.permissions().mode() & 0o777),
                })?;
                copy(&mut f, &mut to, &path.display().to_string())?;
            } else {
                warnings.push(format!(
                    "{}: not a file, directory or symlink: skipped",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// Pull the container directory `at` to the host path `to` (made; or, if it is a directory
/// already, filled). Everything is made beneath `to`, never through a symlink: the container
/// chose every name and link in the tree.
fn pull_tree(s: &Session, at: &At, to: &Path, mode: u32, warnings: &mut Vec<String>) -> Result<()> {
    match std::fs::create_dir(to) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && to.is_dir() => {}
        r => {
            r.ctx(|| format!("mkdir {}", to.display()))?;
            std::fs::set_permissions(to, std::fs::Permissions::from_mode((mode & 0o777) | 0o700))
                .ctx(|| format!("chmod {}", to.display()))?;
        }
    }
    let top = Dir::open(to)?;
    let mut stack: Vec<(At, Dir)> = vec![(at.clone(), top)];
    while let Some((at, host)) = stack.pop() {
        let entries = match s.list(&at) {
            Ok(e) => e,
            // Below the top: a directory gone meanwhile, unreadable, or a `/proc` is skipped,
            // not the end of the pull.
            Err(e) if !at.rel.is_empty() => {
                warnings.push(format!("{e}: skipped"));
                continue;
            }
            Err(e) => return Err(e),
        };
        for e in entries {
            at::check_name(&e.name)?;
            let sub = at.join(&e.name);
            let shown = format!(
                "{}/{}",
                host.name().display(),
                String::from_utf8_lossy(&e.name)
            );
            match e.meta.kind {
                Kind::Dir => {
                    let name = String::from_utf8_lossy(&e.name).to_string();
                    let d = match host.kind(&name)? {
                        Some(crate::beneath::Kind::Dir) => host.open_dir(&name)?,
                        _ => {
                            // While the pull runs, the user must be able to write into it.
                            let d = host.mkdir(&name, 0o700)?;
                            host.chmod(&name, (e.meta.mode & 0o777) | 0o700)?;
                            d
                        }
                    };
                    stack.push((sub, d));
                }
                Kind::File => {
                    let (mut from, m) = match s.fd(&Req::Open { at: sub }) {
                        Ok(x) => x,
                        Err(err) => {
                            warnings.push(format!("{shown}: {err}: skipped"));
                            continue;
                        }
                    };
                    let fd = at::openat2(&host, &e.name, at::WRITE_NEW, 0o600, at::BENEATH)
                        .map_err(|e| at::err(&format!("create {shown}"), e))?;
                    let mut f = std::fs::File::from(fd);
                    if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
                        return Err(Error::Usage(format!("{shown} is not a regular file")));
                    }
                    copy(&mut from, &mut f, &shown)?;
                    f.set_permissions(std::fs::Permissions::from_mode(m.mode & 0o777))
                        .ctx(|| format!("chmod {shown}"))?;
                }
                Kind::Symlink => {
                    let target = e.target.unwrap_or_default();
                    // Made, never followed: what it points at on the host is not read.
                    at::symlinkat(&target, &host, &e.name)
                        .map_err(|e| at::err(&format!("symlink {shown}"), e))?;
                }
                Kind::Other => warnings.push(format!(
                    "{shown}: a FIFO, socket or device in the container: skipped"
                )),
            }
        }
    }
    Ok(())
}
