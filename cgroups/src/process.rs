//! What the host knows about a process that decides what it may do with cgroups: its ids
//! (`/proc/<pid>/status`), its namespaces, its user namespace's id maps, and a pidfd that pins
//! it so that a recycled pid is never mistaken for the process we checked.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result};
use crate::parse::read_to_string;

/// A pidfd: a handle on one process that stays bound to it after its pid is reused.
#[derive(Debug)]
pub struct Pidfd(OwnedFd);

impl Pidfd {
    /// `pidfd_open(pid)`. Fails with ESRCH if there is no such process, EINVAL for a thread id
    /// that is not a thread-group leader.
    pub fn open(pid: u32) -> std::io::Result<Pidfd> {
        let pid = libc::pid_t::try_from(pid)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no pointers.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the syscall succeeded, so `raw` is a new fd that nothing else owns.
        Ok(Pidfd(unsafe { OwnedFd::from_raw_fd(raw as i32) }))
    }

    /// Wrap a pidfd obtained elsewhere (`SO_PEERPIDFD`, a D-Bus `ProcessFD`).
    pub fn from_owned(fd: OwnedFd) -> Pidfd {
        Pidfd(fd)
    }

    /// True while the process has not been reaped (a zombie still counts: its pid cannot be
    /// reused until then).
    pub fn alive(&self) -> bool {
        self.send_signal(0).is_ok()
    }

    /// Wait until the process exits (a zombie has exited), at most `timeout`. True if it did.
    pub fn wait_exit(&self, timeout: std::time::Duration) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
            && fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLIN))
    }

    /// Send a signal to the process (0 only checks it exists). Never reaches another process
    /// that was given the same pid.
    pub fn send_signal(&self, sig: i32) -> std::io::Result<()> {
        // SAFETY: pidfd_send_signal on our own pidfd; a null siginfo is allowed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

impl std::os::fd::AsFd for Pidfd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// A namespace kind a pidfd can be asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    /// The pid namespace.
    Pid,
    /// The user namespace.
    User,
}

impl Pidfd {
    /// The inode of one of the process's namespaces, through the pidfd (`PIDFD_GET_*_NAMESPACE`,
    /// Linux ≥ 6.11): no procfs path walk, and no doubt about which process it is.
    pub fn ns_inode(&self, ns: Ns) -> std::io::Result<u64> {
        // _IO(PIDFS_IOCTL_MAGIC = 0xFF, nr): PID 5, USER 9 (include/uapi/linux/pidfd.h).
        let req: libc::c_ulong = match ns {
            Ns::Pid => 0xFF05,
            Ns::User => 0xFF09,
        };
        // SAFETY: these ioctls take no argument and return a new namespace fd or -1.
        let fd = unsafe { libc::ioctl(self.0.as_raw_fd(), req as _, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the ioctl succeeded, so `fd` is a new descriptor that nothing else owns.
        let f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        use std::os::unix::fs::MetadataExt;
        Ok(f.metadata()?.ino())
    }
}

/// `/proc/<pid>/status`, as seen from the reader's user and pid namespaces: the one parser of
/// it. The id and namespace lines must be there; the others are read when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The command name (`Name:`).
    pub name: String,
    /// The state letter (`State:`, e.g. `R`, `S`, `Z`), if given.
    pub state: Option<char>,
    /// The thread group (process) id (`Tgid:`), if given.
    pub tgid: Option<u32>,
    /// The parent's pid (`PPid:`), if given.
    pub ppid: Option<u32>,
    /// Real, effective, saved, filesystem uid.
    pub uids: [u32; 4],
    /// Real, effective, saved, filesystem gid.
    pub gids: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The pid in each pid namespace from the reader's down to the process's own (`NSpid:`).
    pub nspid: Vec<u32>,
    /// Effective capabilities (`CapEff:`; none when absent).
    pub cap_eff: u64,
}

impl Status {
    /// Read `<proc_root>/<pid>/status`.
    pub fn read(proc_root: &Path, pid: u32) -> Result<Status> {
        let path = proc_root.join(pid.to_string()).join("status");
        Status::parse(&path, &read_to_string(&path)?)
    }

    /// Parse status text (Uid, Gid, Groups and NSpid must be there).
    pub fn parse(path: &Path, text: &str) -> Result<Status> {
        let list = |v: &str| -> Result<Vec<u32>> {
            v.split_ascii_whitespace()
                .map(|t| {
                    t.parse::<u32>()
                        .map_err(|_| Error::parse(path, format!("bad id {t:?}")))
                })
                .collect()
        };
        let four = |v: &str| -> Result<[u32; 4]> {
            let ids = list(v)?;
            <[u32; 4]>::try_from(ids).map_err(|_| Error::parse(path, "expected four ids"))
        };
        let one = |k: &str, v: &str| -> Result<u32> {
            v.trim()
                .parse()
                .map_err(|_| Error::parse(path, format!("bad {k} {v:?}")))
        };
        let (mut uids, mut gids, mut groups, mut nspid) = (None, None, None, None);
        let (mut name, mut state, mut tgid, mut ppid, mut cap_eff) =
            (String::new(), None, None, None, 0);
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k {
                "Name" => name = v.trim().to_string(),
                "State" => state = v.trim().chars().next(),
                "Tgid" => tgid = Some(one(k, v)?),
                "PPid" => ppid = Some(one(k, v)?),
                "Uid" => uids = Some(four(v)?),
                "Gid" => gids = Some(four(v)?),
                "Groups" => groups = Some(list(v)?),
                "NSpid" => nspid = Some(list(v)?),
                "CapEff" => {
                    cap_eff = u64::from_str_radix(v.trim(), 16)
                        .map_err(|_| Error::parse(path, format!("bad CapEff {v:?}")))?
                }
                _ => {}
            }
        }
        match (uids, gids, groups, nspid) {
            (Some(uids), Some(gids), Some(groups), Some(nspid)) if !nspid.is_empty() => {
                Ok(Status {
                    name,
                    state,
                    tgid,
                    ppid,
                    uids,
                    gids,
                    groups,
                    nspid,
                    cap_eff,
                })
            }
            _ => Err(Error::parse(path, "missing Uid/Gid/Groups/NSpid")),
        }
    }

    /// The pid in the process's own (innermost) pid namespace.
    pub fn pid_inside(&self) -> u32 {
        self.nspid.last().copied().unwrap_or(0)
    }

    /// Has it capability `cap` (e.g. 21, `CAP_SYS_ADMIN`) in effect?
    pub fn has_cap(&self, cap: u32) -> bool {
        cap < 64 && self.cap_eff & (1u64 << cap) != 0
    }
}

/// When a process started, in clock ticks (`sysconf(_SC_CLK_TCK)`, 1/100 s on Linux) after
/// boot: field 22 of `<proc_root>/<pid>/stat`, measured on `CLOCK_BOOTTIME` ([`boot_ticks`]).
pub fn start_ticks(proc_root: &Path, pid: u32) -> Result<u64> {
    let path = proc_root.join(pid.to_string()).join("stat");
    let text = read_to_string(&path)?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let fields = text.rsplit_once(')').map_or("", |(_, r)| r);
    fields
        .split_ascii_whitespace()
        .nth(19)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::parse(&path, "no start time (field 22)"))
}

/// Now, in the unit and on the clock of [`start_ticks`] (`CLOCK_BOOTTIME`), rounded down.
pub fn boot_ticks() -> std::io::Result<u64> {
    use nix::time::{clock_gettime, ClockId};
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(100);
    let now = clock_gettime(ClockId::CLOCK_BOOTTIME)?;
    let secs = u64::try_from(now.tv_sec()).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec()).unwrap_or(0);
    Ok(secs * hz + nanos * hz / 1_000_000_000)
}

/// The inode of one of a process's namespaces (`ns` = `pid`, `user`, `cgroup`, …).
pub fn ns_inode(proc_root: &Path, pid: u32, ns: &str) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let path = proc_root.join(pid.to_string()).join("ns").join(ns);
    std::fs::metadata(&path)
        .map(|m| m.ino())
        .map_err(|source| Error::Io { path, source })
}

/// One user namespace's uid or gid map (`/proc/<pid>/uid_map`): `inside outside count` lines,
/// `outside` being ids of the reader's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap(Vec<(u32, u32, u32)>);

impl IdMap {
    /// The identity map of the initial user namespace.
    pub fn identity() -> IdMap {
        IdMap(vec![(0, 0, u32::MAX)])
    }

    /// Read `<proc_root>/<pid>/{uid_map,gid_map}` (`which` = `"uid_map"` or `"gid_map"`).
    pub fn read(proc_root: &Path, pid: u32, which: &str) -> Result<IdMap> {
        let path = proc_root.join(pid.to_string()).join(which);
        IdMap::parse(&path, &read_to_string(&path)?)
    }

    /// Parse map text.
    pub fn parse(path: &Path, text: &str) -> Result<IdMap> {
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let f: Vec<u32> = line
                .split_ascii_whitespace()
                .map(|t| t.parse::<u32>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| Error::parse(path, format!("bad map line {line:?}")))?;
            let [inside, outside, count] = <[u32; 3]>::try_from(f)
                .map_err(|_| Error::parse(path, format!("bad map line {line:?}")))?;
            out.push((inside, outside, count));
        }
        Ok(IdMap(out))
    }

    /// The outside (host) id of an id of the namespace, if mapped.
    pub fn to_outside(&self, id: u32) -> Option<u32> {
        self.0.iter().find_map(|&(i, o, n)| {
            let off = id.checked_sub(i)?;
            (off < n).then(|| o.checked_add(off)).flatten()
        })
    }

    /// The id inside the namespace of an outside (host) id, if mapped.
    pub fn to_inside(&self, id: u32) -> Option<u32> {
        self.0.iter().find_map(|&(i, o, n)| {
            let off = id.checked_sub(o)?;
            (off < n).then(|| i.checked_add(off)).flatten()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ids() {
        let t = "Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t6\t7\t8\nGroups:\t27 100 \nNSpid:\t4242\t1\n";
        let s = Status::parse(Path::new("status"), t).unwrap();
        assert_eq!(s.uids, [1000, 1001, 1002, 1003]);
        assert_eq!(s.gids[1], 6);
        assert_eq!(s.groups, vec![27, 100]);
        assert_eq!(s.nspid, vec![4242, 1]);
        assert!(Status::parse(Path::new("s"), "Uid:\t1 2 3\n").is_err());
        assert!(Status::parse(Path::new("s"), "Uid:\t1 2 3 x\n").is_err());
        assert_eq!((s.name.as_str(), s.state, s.tgid), ("x", None, None));
        assert_eq!(s.pid_inside(), 1);
        assert!(!s.has_cap(21));
    }

    #[test]
    fn the_rest_of_a_real_status_file() {
        let s = Status::read(Path::new("/proc"), std::process::id()).unwrap();
        assert_eq!(s.tgid, Some(std::process::id()));
        assert!(matches!(s.state, Some('R' | 'S')));
        assert!(s.ppid.is_some());
        let t = "Name:\tsystemd\nState:\tS (sleeping)\nTgid:\t7\nPPid:\t1\nUid:\t0 0 0 0\n\
                 Gid:\t0 0 0 0\nGroups:\t\nNSpid:\t7\nCapEff:\t000001ffffffffff\n";
        let s = Status::parse(Path::new("s"), t).unwrap();
        assert_eq!((s.state, s.tgid, s.ppid), (Some('S'), Some(7), Some(1)));
        assert!(s.has_cap(21) && !s.has_cap(41) && !s.has_cap(99));
        assert!(Status::parse(Path::new("s"), &t.replace("CapEff:\t0", "CapEff:\tz")).is_err());
    }

    #[test]
    fn id_maps_translate_both_ways() {
        let m = IdMap::parse(Path::new("m"), "0 100000 65536\n65536 5000 1\n").unwrap();
        assert_eq!(m.to_outside(0), Some(100000));
        assert_eq!(m.to_outside(65535), Some(165535));
        assert_eq!(m.to_outside(65536), Some(5000));
        assert_eq!(m.to_outside(65537), None);
        assert_eq!(m.to_inside(100001), Some(1));
        assert_eq!(m.to_inside(99999), None);
        assert_eq!(
            IdMap::identity().to_outside(4_000_000_000),
            Some(4_000_000_000)
        );
        assert!(IdMap::parse(Path::new("m"), "0 1\n").is_err());
    }

    #[test]
    fn start_ticks_from_stat() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("7")).unwrap();
        // A command name with a space and a parenthesis in it.
        let stat = "7 (a) b) S 1 7 7 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 4242 1 2 3\n";
        std::fs::write(d.path().join("7/stat"), stat).unwrap();
        assert_eq!(start_ticks(d.path(), 7).unwrap(), 4242);
        std::fs::write(d.path().join("7/stat"), "7 (a) S 1\n").unwrap();
        assert!(start_ticks(d.path(), 7).is_err());
        // This process started before now, on the same clock.
        let me = std::process::id();
        let started = start_ticks(Path::new("/proc"), me).unwrap();
        assert!(started <= boot_ticks().unwrap());
    }

    #[test]
    fn own_process() {
        let me = std::process::id();
        let fd = Pidfd::open(me).unwrap();
        assert!(fd.alive());
        let s = Status::read(Path::new("/proc"), me).unwrap();
        assert_eq!(*s.nspid.last().unwrap(), me);
        let pidns = ns_inode(Path::new("/proc"), me, "pid").unwrap();
        let userns = ns_inode(Path::new("/proc"), me, "user").unwrap();
        assert!(pidns > 0 && userns > 0 && pidns != userns);
        // Kernels before 6.11 lack the ioctls; where they exist they must agree with procfs.
        if let Ok(i) = fd.ns_inode(Ns::Pid) {
            assert_eq!(i, pidns);
            assert_eq!(fd.ns_inode(Ns::User).unwrap(), userns);
        }
        assert!(Pidfd::open(u32::MAX).is_err());
    }

    #[test]
    fn wait_exit_sees_an_unreaped_exit() {
        let mut c = std::process::Command::new("sleep")
            .arg("0.05")
            .spawn()
            .unwrap();
        let fd = Pidfd::open(c.id()).unwrap();
        assert!(!fd.wait_exit(std::time::Duration::from_millis(1)));
        assert!(fd.wait_exit(std::time::Duration::from_secs(5)));
        c.wait().unwrap();
    }

    #[test]
    fn reaped_child_is_not_alive() {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let fd = Pidfd::open(c.id()).unwrap();
        c.wait().unwrap();
        assert!(!fd.alive());
    }
}
