//! What `lxr file` and its helper in the container say to each other: one [`Req`] from lxr,
//! answered by one [`Rep`] (a listing by several [`Rep::Entries`] and a closing [`Rep::Ok`]),
//! carried as [`Msg::File`] on the channel. Names and link targets are bytes: a container's
//! file names need not be UTF-8.

use std::os::fd::{OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use crate::channel::{End, Msg};
use crate::error::{Error, Result};

/// A path in the container: `top` (absolute, as the user wrote it) resolved in the container's
/// root, symlinks followed but never out of it; then `rel` (names a walk found, possibly
/// empty) beneath that, no symlink followed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct At {
    /// As the user gave it.
    pub top: String,
    /// Names below `top`.
    pub rel: Vec<Vec<u8>>,
}

impl At {
    /// `top` itself.
    pub fn top(top: &str) -> At {
        At {
            top: top.to_string(),
            rel: Vec::new(),
        }
    }

    /// The entry `name` below this one.
    pub fn join(&self, name: &[u8]) -> At {
        let mut rel = self.rel.clone();
        rel.push(name.to_vec());
        At {
            top: self.top.clone(),
            rel,
        }
    }
}

/// What a file is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A FIFO, socket or device: never opened.
    Other,
}

/// A file's metadata.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    /// Its kind.
    pub kind: Kind,
    /// Permission bits (with set-id and sticky).
    pub mode: u32,
    /// Owner in the container.
    pub uid: u32,
    /// Group in the container.
    pub gid: u32,
}

/// A directory entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Its name.
    pub name: Vec<u8>,
    /// Its metadata (not following a symlink).
    pub meta: Meta,
    /// A symlink's target.
    pub target: Option<Vec<u8>>,
}

/// lxr → helper.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Req {
    /// Metadata of the path, following a last symlink (in the container) when `follow`.
    Stat {
        /// Which.
        at: At,
        /// Follow a symlink at the end.
        follow: bool,
    },
    /// Create (or truncate) a regular file, owned and moded so; answered with a write-only
    /// descriptor.
    Create {
        /// Which.
        at: At,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Mode.
        mode: u32,
    },
    /// Make a directory (an existing one is kept, and given the owner and mode, when
    /// `exist_ok`).
    Mkdir {
        /// Which.
        at: At,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Mode.
        mode: u32,
        /// An existing directory is fine.
        exist_ok: bool,
    },
    /// Make a symlink (replacing a symlink of that name).
    Symlink {
        /// Which.
        at: At,
        /// Its target.
        target: Vec<u8>,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// Open a regular file for reading; answered with a read-only descriptor.
    Open {
        /// Which.
        at: At,
    },
    /// List a directory.
    List {
        /// Which.
        at: At,
    },
    /// Remove a file, a symlink or an empty directory (a whole tree when `recursive`).
    Delete {
        /// Which.
        at: At,
        /// A directory with everything in it.
        recursive: bool,
    },
}

/// helper → lxr.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Rep {
    /// Done.
    Ok,
    /// Failed, and why.
    Err(String),
    /// Metadata (`None`: no such file).
    Stat(Option<Meta>),
    /// A descriptor is attached; the file's metadata.
    Fd(Meta),
    /// Part of a listing (more follow, then [`Rep::Ok`]).
    Entries(Vec<Entry>),
}

/// Either direction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
enum Wire {
    Req(Req),
    Rep(Rep),
}

fn send(chan: &End, w: &Wire, fds: &[RawFd]) -> Result<()> {
    let text = serde_json::to_string(w).map_err(|e| Error::Usage(format!("encode: {e}")))?;
    chan.send_with(&Msg::File(text), fds)
}

fn recv(chan: &End) -> Result<Option<(Wire, Vec<OwnedFd>)>> {
    match chan.recv()? {
        None => Ok(None),
        Some((Msg::File(text), fds)) => Ok(Some((
            serde_json::from_str(&text)
                .map_err(|e| Error::Usage(format!("a garbled file message: {e}")))?,
            fds,
        ))),
        Some((Msg::Failed(why), _)) => Err(super::super::exec::helper_error(&why)),
        Some((m, _)) => Err(Error::Usage(format!("lxr file: unexpected {m:?}"))),
    }
}

/// Send a request.
pub fn request(chan: &End, r: &Req) -> Result<()> {
    send(chan, &Wire::Req(r.clone()), &[])
}

/// Send an answer, with `fds`.
pub fn reply(chan: &End, r: &Rep, fds: &[RawFd]) -> Result<()> {
    send(chan, &Wire::Rep(r.clone()), fds)
}

/// The next request (`None`: lxr is done).
pub fn next_request(chan: &End) -> Result<Option<Req>> {
    match recv(chan)? {
        None => Ok(None),
        Some((Wire::Req(r), _)) => Ok(Some(r)),
        Some((Wire::Rep(_), _)) => Err(Error::Usage("lxr file: an answer from lxr".into())),
    }
}

/// The next answer and its descriptors.
pub fn answer(chan: &End) -> Result<(Rep, Vec<OwnedFd>)> {
    match recv(chan)? {
        None => Err(Error::Usage("lxr file's helper died".into())),
        Some((Wire::Rep(Rep::Err(why)), _)) => Err(Error::Usage(why)),
        Some((Wire::Rep(r), fds)) => Ok((r, fds)),
        Some((Wire::Req(_), _)) => Err(Error::Usage("lxr file: a request from the helper".into())),
    }
}
