//! The requests a server is answering, kept where the next server finds them: how a crash is
//! survived on kernels without `FUSE_NOTIFY_RESEND` (before 6.9).
//!
//! A request a server has read from `/dev/fuse` waits in the kernel's "processing" list of
//! that open file until a reply with its `unique` id is written to the same open file — by
//! anyone who holds it. Its reader waits *uninterruptibly* meanwhile (even `SIGKILL` does not
//! free it: `request_wait_answer` in `fs/fuse/dev.c`). When the server is killed, the
//! supervisor (or systemd's fd store) keeps the open file alive, so the request stays there
//! and its reader stays stuck. Since 6.9 the successor asks the kernel to send such requests
//! again (`FUSE_NOTIFY_RESEND`); before 6.9 only a reply can release them, and only the dead
//! server knew what they asked.
//!
//! So each worker thread reads its requests straight into its own slot of a memfd, the
//! journal, mapped shared ([`Slot`]): the kernel copies a request there before `read()`
//! returns, so no kill can come between reading a request and having it recorded. Once the
//! reply is written the worker clears the slot (zeroes the request's id). The memfd is held
//! by whoever holds the connection (the supervisor, systemd's fd store as `journal`, a live
//! upgrade's successor), so the next server finds in it the requests its predecessor had
//! read and not answered ([`Journal::pending`]), serves them, and writes the replies with
//! their original ids: the readers get their answers, as with a resend. A request the
//! predecessor did answer just before dying is answered again: the kernel refuses that
//! reply (`ENOENT`, no such request), which changes nothing. Each is replayed once: the
//! successor empties the journal before serving them, so a request that kills its server
//! (a bug) cannot kill every successor in turn — its reader then stays stuck, as without the
//! journal. Cost: none beyond a store of 8 bytes per request — the request had to be read
//! into some buffer anyway.
//!
//! A slot is [`SLOT`] bytes, the kernel's minimum read buffer (`FUSE_MIN_READ_BUFFER`); that
//! is enough because the filesystem enables neither big writes nor `max_pages` at
//! `FUSE_INIT`, so `max_write` is 4 KiB and every request fits.

use std::fs::File;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;

/// The journal's memfd, for a successor or a supervised child.
pub const JOURNAL_FD_ENV: &str = "LXCFS_JOURNAL_FD";
/// The name of the journal in systemd's fd store.
pub const FDSTORE_NAME: &str = "journal";

/// One worker's slot: `FUSE_MIN_READ_BUFFER`.
pub const SLOT: usize = 8192;
/// The fixed part of a FUSE request (`fuse_in_header`).
const IN_HEADER: usize = 40;

/// FUSE opcodes that get no reply: never replayed.
const FORGET: u32 = 2;
const INTERRUPT: u32 = 36;
const BATCH_FORGET: u32 = 42;

/// A request found in the journal: read by a server that did not answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The request's id, for the reply.
    pub unique: u64,
    /// Its opcode.
    pub opcode: u32,
    /// The request as read from `/dev/fuse`.
    pub request: Vec<u8>,
}

/// The journal: one slot per worker of the serving generation.
#[derive(Debug)]
pub struct Journal {
    file: File,
}

impl Journal {
    /// A new, empty journal; `None` without memfd (a crash then leaves the requests in
    /// flight unanswered on kernels without `FUSE_NOTIFY_RESEND`).
    pub fn new() -> Option<Journal> {
        match nix::sys::memfd::memfd_create(
            c"lxcfs-journal",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        ) {
            Ok(fd) => Some(Journal {
                file: File::from(fd),
            }),
            Err(e) => {
                tracing::warn!("memfd_create: {e}; no request journal");
                None
            }
        }
    }

    /// The journal a predecessor, the supervisor or systemd's fd store hands us.
    pub fn adopt(file: File) -> Journal {
        Journal { file }
    }

    /// The memfd, to pass on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The requests read into a slot and not answered, in slot order.
    pub fn pending(&self) -> std::io::Result<Vec<Pending>> {
        let slots = self.file.metadata()?.len() / SLOT as u64;
        let mut found = Vec::new();
        for i in 0..slots {
            let mut head = [0u8; IN_HEADER];
            self.file.read_exact_at(&mut head, i * SLOT as u64)?;
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let opcode = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            let mut id = [0u8; 8];
            id.copy_from_slice(&head[8..16]);
            let unique = u64::from_le_bytes(id);
            if unique == 0
                || !(IN_HEADER..=SLOT).contains(&len)
                || matches!(opcode, FORGET | INTERRUPT | BATCH_FORGET)
            {
                continue;
            }
            let mut request = vec![0u8; len];
            self.file.read_exact_at(&mut request, i * SLOT as u64)?;
            found.push(Pending {
                unique,
                opcode,
                request,
            });
        }
        Ok(found)
    }

    /// Empty the journal and size it for `slots` workers. Only while no [`Slot`] of it is
    /// mapped by any process (a mapping past the new end would fault).
    pub fn reset(&self, slots: usize) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.set_len((slots * SLOT) as u64)
    }

    /// Map slot `index` (growing the journal to hold it) for the calling worker.
    pub fn slot(&self, index: usize) -> std::io::Result<Slot> {
        let offset = index * SLOT;
        let end = (offset + SLOT) as u64;
        if self.file.metadata()?.len() < end {
            self.file.set_len(end)?;
        }
        let len = NonZeroUsize::new(SLOT).ok_or_else(|| std::io::Error::other("empty slot"))?;
        use nix::sys::mman::{mmap, MapFlags, ProtFlags};
        // SAFETY: a fresh shared mapping of our own memfd, within its size; only this Slot
        // uses it, and no process shrinks the memfd while a worker serves (see `reset`).
        let ptr = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &self.file,
                offset as libc::off_t,
            )
        }
        .map_err(std::io::Error::from)?;
        Ok(Slot { ptr })
    }
}

/// One worker's slot, mapped shared: it reads each request straight into it (so a request
/// it has read is in the journal whatever happens to the process), and [`Slot::done`]
/// clears it once answered. Not `Send`: each worker maps its own, in its own thread.
#[derive(Debug)]
pub struct Slot {
    ptr: NonNull<libc::c_void>,
}

impl Slot {
    /// The slot's bytes, to read a request into.
    pub fn buf(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is SLOT bytes, readable and writable, alive until drop; the
        // `&mut self` borrow makes this the only reference, and no other process writes the
        // slot while this one serves.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>(), SLOT) }
    }

    /// The request read into the slot is answered: forget it (zero its id).
    pub fn done(&mut self) {
        self.buf()[8..16].fill(0);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping this Slot made; no reference into it outlives the
        // `&mut self` borrows of `buf`.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr, SLOT) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FUSE request: len, opcode, unique, then the rest of the header and `extra` bytes.
    fn request(opcode: u32, unique: u64, extra: usize) -> Vec<u8> {
        let len = IN_HEADER + extra;
        let mut r = Vec::new();
        r.extend_from_slice(&(len as u32).to_le_bytes());
        r.extend_from_slice(&opcode.to_le_bytes());
        r.extend_from_slice(&unique.to_le_bytes());
        r.resize(len, 7);
        r
    }

    /// What a worker does: the kernel's `read()` writes the request into the slot.
    fn read_into(slot: &mut Slot, req: &[u8]) {
        slot.buf()[..req.len()].copy_from_slice(req);
    }

    #[test]
    fn requests_in_slots_are_seen_by_the_next_holder_until_done() {
        let j = Journal::new().unwrap();
        j.reset(2).unwrap();
        let (mut a, mut b) = (j.slot(0).unwrap(), j.slot(1).unwrap());
        let read = request(15, 41, 40);
        read_into(&mut a, &read);
        read_into(&mut b, &request(1, 42, 8));
        // Another holder of the memfd (the next server) sees them, without the mappings.
        let next = Journal::adopt(j.file.try_clone().unwrap());
        let p = next.pending().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0],
            Pending {
                unique: 41,
                opcode: 15,
                request: read
            }
        );
        a.done();
        assert_eq!(next.pending().unwrap()[0].unique, 42, "answered: gone");
        // No reply is due to these: never replayed.
        read_into(&mut a, &request(FORGET, 43, 8));
        read_into(&mut b, &request(INTERRUPT, 44, 8));
        assert!(next.pending().unwrap().is_empty());
        // A slot past the end grows the journal.
        let mut c = j.slot(4).unwrap();
        read_into(&mut c, &request(3, 45, 0));
        assert_eq!(next.pending().unwrap()[0].unique, 45);
        drop((a, b, c));
        next.reset(1).unwrap();
        assert!(j.pending().unwrap().is_empty());
    }
}
