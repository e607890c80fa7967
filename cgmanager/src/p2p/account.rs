//! Whom a peer-to-peer connection counts against, for the per-user cap on connections. A user
//! runs processes under 65536 subordinate uids as well as its own, so counting by uid would
//! give it 65537 caps: a process in a user namespace counts against the owner of that
//! namespace's outermost ancestor below the host's (the user who made the container), a
//! namespace root made (LXC or LXD as root) counts on its own, and root on the host is not
//! capped.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

/// `NS_GET_PARENT` (`linux/nsfs.h`: `_IO(0xb7, 0x2)`).
const NS_GET_PARENT: libc::c_ulong = 0xb702;
/// `NS_GET_OWNER_UID` (`_IO(0xb7, 0x4)`).
const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;

/// Whom a connection counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Account {
    /// Root on the host: not capped.
    Root,
    /// A user on the host, with every user namespace it owns.
    User(u32),
    /// A user namespace root made (by its inode), with everything nested in it.
    Namespace(u64),
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Account::Root => write!(f, "root"),
            Account::User(u) => write!(f, "uid {u}"),
            Account::Namespace(n) => write!(f, "user namespace {n}"),
        }
    }
}

fn inode(fd: &OwnedFd) -> Option<u64> {
    nix::sys::stat::fstat(fd).ok().map(|st| st.st_ino)
}

fn ns_ioctl(fd: &OwnedFd, req: libc::c_ulong) -> Option<OwnedFd> {
    // SAFETY: an nsfs ioctl without an argument on a namespace descriptor we own; the result is
    // a new descriptor or an error.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _) };
    // SAFETY: a non-negative result is a descriptor the kernel just installed for us.
    (r >= 0).then(|| unsafe { OwnedFd::from_raw_fd(r) })
}

fn owner(fd: &OwnedFd) -> Option<u32> {
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes a uid_t we own.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_OWNER_UID as _, &mut uid) };
    (r == 0).then_some(uid)
}

/// The account of the process `pid` whose uid (in the daemon's namespace) is `uid`; the host's
/// user namespace has inode `host`. If the namespaces cannot be read, the uid counts.
pub fn of(pid: u32, uid: u32, host: u64) -> Account {
    let by_uid = if uid == 0 {
        Account::Root
    } else {
        Account::User(uid)
    };
    let Ok(f) = std::fs::File::open(format!("/proc/{pid}/ns/user")) else {
        return by_uid;
    };
    let mut ns = OwnedFd::from(f);
    for _ in 0..33 {
        let Some(ino) = inode(&ns) else { return by_uid };
        if ino == host {
            return by_uid;
        }
        let Some(parent) = ns_ioctl(&ns, NS_GET_PARENT) else {
            return by_uid;
        };
        if inode(&parent) == Some(host) {
            return match owner(&ns) {
                Some(0) => Account::Namespace(ino),
                Some(u) => Account::User(u),
                None => by_uid,
            };
        }
        ns = parent;
    }
    by_uid
}

/// Connections per account, at most `cap` each (root unbounded).
#[derive(Debug)]
pub struct Slots {
    cap: usize,
    used: Mutex<HashMap<Account, usize>>,
}

/// One connection's place; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    account: Account,
}

impl Slots {
    /// At most `cap` connections per account.
    pub fn new(cap: usize) -> Arc<Slots> {
        Arc::new(Slots {
            cap,
            used: Mutex::new(HashMap::new()),
        })
    }

    /// A place for `account`, if it has one left.
    pub fn take(self: &Arc<Self>, account: Account) -> Option<Slot> {
        let mut used = self.used.lock().ok()?;
        let n = used.entry(account).or_insert(0);
        if account != Account::Root && *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: self.clone(),
            account,
        })
    }

    /// Connections `account` holds.
    pub fn held(&self, account: Account) -> usize {
        self.used
            .lock()
            .ok()
            .and_then(|u| u.get(&account).copied())
            .unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut used) = self.slots.used.lock() {
            if let Some(n) = used.get_mut(&self.account) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    used.remove(&self.account);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_per_account_and_given_back() {
        let s = Slots::new(2);
        let a = Account::User(1001);
        let (x, y) = (s.take(a).unwrap(), s.take(a).unwrap());
        assert!(s.take(a).is_none());
        assert!(s.take(Account::User(1002)).is_some());
        let roots: Vec<_> = (0..10).map(|_| s.take(Account::Root).unwrap()).collect();
        assert_eq!(s.held(Account::Root), 10);
        drop((x, roots));
        assert!(s.take(a).is_some());
        drop(y);
    }

    #[test]
    fn this_process_is_root_or_its_user() {
        let host = nix::sys::stat::stat("/proc/self/ns/user").unwrap().st_ino;
        let me = nix::unistd::getuid().as_raw();
        let want = if me == 0 {
            Account::Root
        } else {
            Account::User(me)
        };
        assert_eq!(of(std::process::id(), me, host), want);
    }
}
