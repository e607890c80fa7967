//! Task-state counts of a cgroup v1 cgroup in one kernel call: taskstats' `CGROUPSTATS_CMD_GET`
//! over generic netlink (`linux/cgroupstats.h`). The kernel walks the cgroup's tasks itself
//! and returns how many are running, sleeping, in uninterruptible sleep, stopped or waiting on
//! I/O — where reading `/proc/<tid>/stat` for every thread costs three syscalls and a
//! formatted file per thread. Needs `CAP_NET_ADMIN` (the daemon runs as root) and a v1
//! cgroupfs directory; anything else is an error and the caller counts through `/proc`.
//! Caveat: the kernel compares the raw task state, so a task sleeping with
//! `TASK_INTERRUPTIBLE|TASK_FREEZABLE` (nanosleep, since Linux 6.1) lands in no bucket —
//! fine for the load average (R and D), wrong for a total.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
};

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const TASKSTATS_GENL_VERSION: u8 = 1;
const CGROUPSTATS_CMD_GET: u8 = 4;
const CGROUPSTATS_CMD_ATTR_FD: u16 = 1;
const CGROUPSTATS_TYPE_CGROUP_STATS: u16 = 1;
const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;

/// `struct cgroupstats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Interruptible sleep.
    pub sleeping: u64,
    /// Runnable.
    pub running: u64,
    /// Stopped.
    pub stopped: u64,
    /// Uninterruptible sleep.
    pub uninterruptible: u64,
    /// Waiting on I/O.
    pub io_wait: u64,
}

impl Counts {
    /// Tasks that count towards the load average (R and D).
    pub fn active(&self) -> u64 {
        self.running + self.uninterruptible
    }
}

/// A generic netlink socket talking to the TASKSTATS family.
pub struct CgroupStats {
    sock: OwnedFd,
    family: u16,
    seq: u32,
    buf: Vec<u8>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn put_attr(msg: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    msg.extend_from_slice(&(len as u16).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(payload);
    msg.resize(align4(msg.len()), 0);
}

/// The attributes after the netlink and genetlink headers of one reply: `(type, payload)`.
fn attrs(payload: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[at], payload[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([payload[at + 2], payload[at + 3]]) & 0x3fff;
        if len < 4 || at + len > payload.len() {
            break;
        }
        out.push((kind, &payload[at + 4..at + len]));
        at += align4(len);
    }
    out
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_ne_bytes(a)
}

impl CgroupStats {
    /// Open the socket and look the TASKSTATS family up.
    pub fn open() -> io::Result<CgroupStats> {
        let sock = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkGeneric,
        )?;
        let mut s = CgroupStats {
            sock,
            family: 0,
            seq: 0,
            buf: vec![0u8; 8192],
        };
        let mut name = b"TASKSTATS".to_vec();
        name.push(0);
        let mut attrs_out = Vec::new();
        put_attr(&mut attrs_out, CTRL_ATTR_FAMILY_NAME, &name);
        let reply = s.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, &attrs_out)?;
        s.family = attrs(&reply)
            .into_iter()
            .find(|(k, v)| *k == CTRL_ATTR_FAMILY_ID && v.len() >= 2)
            .map(|(_, v)| u16::from_ne_bytes([v[0], v[1]]))
            .ok_or_else(|| io::Error::other("no TASKSTATS family id"))?;
        Ok(s)
    }

    /// Counts of the tasks directly in the cgroup whose directory is open as `dir` (not its
    /// children).
    pub fn counts(&mut self, dir: &std::fs::File) -> io::Result<Counts> {
        let fd = u32::try_from(dir.as_raw_fd()).map_err(|_| io::Error::other("bad fd"))?;
        let mut a = Vec::new();
        put_attr(&mut a, CGROUPSTATS_CMD_ATTR_FD, &fd.to_ne_bytes());
        let reply = self.request(self.family, CGROUPSTATS_CMD_GET, TASKSTATS_GENL_VERSION, &a)?;
        let stats = attrs(&reply)
            .into_iter()
            .find(|(k, v)| *k == CGROUPSTATS_TYPE_CGROUP_STATS && v.len() >= 40)
            .map(|(_, v)| v)
            .ok_or_else(|| io::Error::other("no cgroupstats in the reply"))?;
        Ok(Counts {
            sleeping: u64_at(stats, 0),
            running: u64_at(stats, 1),
            stopped: u64_at(stats, 2),
            uninterruptible: u64_at(stats, 3),
            io_wait: u64_at(stats, 4),
        })
    }

    /// Send one genetlink request and return the attributes part of its reply.
    fn request(&mut self, family: u16, cmd: u8, version: u8, attrs: &[u8]) -> io::Result<Vec<u8>> {
        self.seq = self.seq.wrapping_add(1);
        let len = NLMSG_HDRLEN + GENL_HDRLEN + attrs.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&family.to_ne_bytes());
        msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&[cmd, version, 0, 0]);
        msg.extend_from_slice(attrs);
        // No address: a netlink socket's default destination is the kernel.
        send(self.sock.as_raw_fd(), &msg, MsgFlags::empty())?;
        loop {
            let n = recv(self.sock.as_raw_fd(), &mut self.buf, MsgFlags::empty())?;
            let b = &self.buf[..n];
            if b.len() < NLMSG_HDRLEN {
                return Err(io::Error::other("short netlink reply"));
            }
            let kind = u16::from_ne_bytes([b[4], b[5]]);
            let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
            if seq != self.seq {
                continue; // a late reply to an earlier request
            }
            if kind == NLMSG_ERROR {
                let err = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
                return Err(io::Error::from_raw_os_error(-err));
            }
            let mlen = (u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize).min(b.len());
            if mlen < NLMSG_HDRLEN + GENL_HDRLEN {
                return Err(io::Error::other("short genetlink reply"));
            }
            return Ok(b[NLMSG_HDRLEN + GENL_HDRLEN..mlen].to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_parsed_and_padded() {
        let mut m = Vec::new();
        put_attr(&mut m, 2, b"TASKSTATS\0");
        put_attr(&mut m, 1, &7u16.to_ne_bytes());
        assert_eq!(m.len() % 4, 0);
        let a = attrs(&m);
        assert_eq!(a[0], (2, &b"TASKSTATS\0"[..]));
        assert_eq!(a[1].0, 1);
        assert_eq!(attrs(&m[..3]), vec![]);
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::*;
    use std::path::Path;

    /// This process's cgroup in the v1 `cpu` hierarchy, if the host has one.
    fn own_cpu_cgroup() -> Option<std::path::PathBuf> {
        let cgs = cgroups::ProcCgroups::read(Path::new("/proc"), std::process::id()).ok()?;
        let rel = cgs.v1_path("cpu")?;
        let mount = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"]
            .into_iter()
            .find(|m| Path::new(m).join("tasks").exists())?;
        Some(Path::new(mount).join(rel.trim_start_matches('/')))
    }

    #[test]
    fn the_kernel_counts_our_own_cgroup() {
        let Some(dir) = own_cpu_cgroup() else {
            return; // no v1 cpu hierarchy on this host: nothing to ask the kernel
        };
        let mut s = CgroupStats::open().expect("taskstats (needs root)");
        let d = std::fs::File::open(&dir).unwrap();
        let c = s.counts(&d).expect("cgroupstats of our cgroup");
        // This thread is running while it asks.
        assert!(c.running >= 1 && c.active() >= 1, "{c:?}");
        // A directory that is not a v1 cgroup is refused, so the caller falls back.
        let tmp = std::fs::File::open("/tmp").unwrap();
        assert!(s.counts(&tmp).is_err());
    }
}
