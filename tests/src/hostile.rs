//! Harness for lxr's hostile suite (`tests/tests/lxr_hostile.rs`): a test user's home with
//! secrets in it, hashed before and after every case ([`Home`]); tarballs built byte by byte
//! so they can hold what no honest tool writes — `../` and absolute names, out-of-range
//! owners, devices, FIFOs, lies about sizes ([`Tar`]); a static probe program run inside
//! containers ([`probe`]); a second user's view of the first user's files ([`as_other`]); and
//! the descriptors every process of a container holds ([`container_fds`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cgm::test_user;
use crate::lxr::Lxr;

/// A home directory for lxrtest1 with things an attacker wants: `.bashrc`, `.profile`,
/// `.ssh/id_rsa`, `.ssh/authorized_keys`, and lxr's data directory at the default place
/// (`~/.local/share/lxr`).
pub struct Home {
    dir: tempfile::TempDir,
    /// lxr as lxrtest1 with `HOME` here (no cgmanager, no lxcfs).
    pub lxr: Lxr,
}

impl Default for Home {
    fn default() -> Home {
        Home::new()
    }
}

impl Home {
    /// Make one.
    pub fn new() -> Home {
        let (uid, gid) = test_user("lxrtest1");
        let dir = tempfile::Builder::new()
            .prefix("lxr-hostile-")
            .tempdir()
            .unwrap();
        let h = dir.path();
        std::fs::create_dir_all(h.join(".ssh")).unwrap();
        std::fs::create_dir_all(h.join(".local/share")).unwrap();
        std::fs::write(h.join(".bashrc"), "# the user's bashrc\n").unwrap();
        std::fs::write(h.join(".profile"), "# the user's profile\n").unwrap();
        std::fs::write(h.join(".ssh/id_rsa"), "-----BEGIN SECRET KEY-----\n").unwrap();
        std::fs::write(h.join(".ssh/authorized_keys"), "ssh-ed25519 AAAA user\n").unwrap();
        std::fs::set_permissions(
            h.join(".ssh/id_rsa"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::set_permissions(h.join(".ssh"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(h, std::fs::Permissions::from_mode(0o755)).unwrap();
        chown_tree(h, uid, gid);
        let lxr = Lxr {
            home: h.to_path_buf(),
            data: h.join(".local/share"),
            cgm: "/nonexistent/sock".into(),
            lxcfs: None,
        };
        Home { dir, lxr }
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// lxr's data directory.
    pub fn data(&self) -> PathBuf {
        self.path().join(".local/share/lxr")
    }

    /// Every path of the home outside lxr's data directory with its type, mode, owner and
    /// content (or link target).
    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        walk(self.path(), &self.data(), &mut out);
        out
    }

    /// Run one case: the home outside the data directory must be the same afterwards, and
    /// lxr must still work (launch, exec, delete a container; list images).
    pub fn case(&self, name: &str, f: impl FnOnce()) {
        let before = self.snapshot();
        f();
        let after = self.snapshot();
        assert_eq!(before, after, "{name}: the user's home changed");
        self.still_works(name);
    }

    /// lxr still works: images list, and a busybox container launches, runs a command and goes.
    pub fn still_works(&self, name: &str) {
        let l = &self.lxr;
        let o = l.run(&["image", "list"]);
        assert!(o.status.success(), "{name}: image list: {o:?}");
        let o = l.run(&["launch", "busybox", "probe"]);
        assert!(o.status.success(), "{name}: launch after the case: {o:?}");
        assert_eq!(
            l.ok(&["exec", "probe", "--", "echo", "alive"]),
            "alive",
            "{name}"
        );
        l.ok(&["delete", "--force", "probe"]);
        self.no_leftovers(name);
    }

    /// No partial import and no setuid/setgid file of the user's own ids anywhere in the data
    /// directory; no file of the user's in any rootfs.
    pub fn no_leftovers(&self, name: &str) {
        let (uid, gid) = test_user("lxrtest1");
        let images = self.data().join("images");
        if let Ok(rd) = std::fs::read_dir(&images) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                assert!(!n.starts_with(".partial-"), "{name}: {n} left behind");
            }
        }
        let mut bad = Vec::new();
        find_owned(&self.data(), uid, gid, false, &mut bad);
        assert!(
            bad.is_empty(),
            "{name}: user-owned files in rootfs or set-id: {bad:?}"
        );
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = self.lxr.run(&["delete", "--force", "probe"]);
    }
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let _ = std::os::unix::fs::lchown(p, Some(uid), Some(gid));
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

fn walk(p: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, String>) {
    if p == skip {
        return;
    }
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return;
    };
    let desc = if md.file_type().is_symlink() {
        format!("link {:?}", std::fs::read_link(p).ok())
    } else if md.is_file() {
        format!("file {:?}", std::fs::read(p).ok())
    } else {
        "dir".to_string()
    };
    out.insert(
        p.to_path_buf(),
        format!("{desc} {:o} {}:{}", md.mode(), md.uid(), md.gid()),
    );
    if md.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            walk(&e.path(), skip, out);
        }
    }
}

/// Files below `p` owned by `uid`/`gid` that are set-id, or (in a rootfs) owned by them at all.
fn find_owned(p: &Path, uid: u32, gid: u32, in_rootfs: bool, out: &mut Vec<PathBuf>) {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return;
    };
    let mine = md.uid() == uid || md.gid() == gid;
    let setid = md.mode() & 0o6000 != 0;
    if mine && (setid || in_rootfs) {
        out.push(p.to_path_buf());
    }
    if md.is_dir() {
        let rootfs = in_rootfs || p.file_name().is_some_and(|n| n == "rootfs");
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                find_owned(&e.path(), uid, gid, rootfs, out);
            }
        }
    }
}

/// A tar archive written header by header (ustar, with GNU base-256 numbers where octal
/// does not fit).
#[derive(Default)]
pub struct Tar {
    out: Vec<u8>,
}

/// An entry's owner and mode.
#[derive(Clone, Copy)]
pub struct Meta {
    /// Mode bits (permissions and set-id).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// root, 0644 (files) — directories get 0755 from [`Tar::dir`].
pub const ROOT: Meta = Meta {
    mode: 0o644,
    uid: 0,
    gid: 0,
};

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0w$o}", v, w = field.len() - 1);
    if s.len() < field.len() {
        field[..s.len()].copy_from_slice(s.as_bytes());
        field[s.len()] = 0;
    } else {
        // GNU base-256: the high bit of the first byte set, the value big-endian in the rest.
        field.fill(0);
        let b = v.to_be_bytes();
        let len = field.len();
        let n = len.min(8);
        field[len - (n - 1)..].copy_from_slice(&b[8 - (n - 1)..]);
        field[0] = 0x80;
    }
}

impl Tar {
    /// A new archive.
    pub fn new() -> Tar {
        Tar::default()
    }

    fn header(&mut self, name: &str, meta: Meta, size: u64, kind: u8, link: &str, dev: (u32, u32)) {
        let mut h = [0u8; 512];
        assert!(
            name.len() <= 100 && link.len() <= 100,
            "name too long for ustar"
        );
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], u64::from(meta.mode));
        octal(&mut h[108..116], u64::from(meta.uid));
        octal(&mut h[116..124], u64::from(meta.gid));
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 1_700_000_000);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], u64::from(dev.0));
        octal(&mut h[337..345], u64::from(dev.1));
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.out.extend_from_slice(&h);
    }

    fn pad(&mut self) {
        let r = self.out.len() % 512;
        if r != 0 {
            self.out.resize(self.out.len() + 512 - r, 0);
        }
    }

    /// A regular file.
    pub fn file(mut self, name: &str, meta: Meta, data: &[u8]) -> Tar {
        self.header(name, meta, data.len() as u64, b'0', "", (0, 0));
        self.out.extend_from_slice(data);
        self.pad();
        self
    }

    /// A file header claiming `size` bytes with nothing after it (a truncated archive).
    pub fn file_header_only(mut self, name: &str, size: u64) -> Tar {
        self.header(name, ROOT, size, b'0', "", (0, 0));
        self
    }

    /// A directory.
    pub fn dir(mut self, name: &str, meta: Meta) -> Tar {
        let meta = Meta {
            mode: if meta.mode == 0o644 { 0o755 } else { meta.mode },
            ..meta
        };
        self.header(name, meta, 0, b'5', "", (0, 0));
        self
    }

    /// A symlink.
    pub fn symlink(mut self, name: &str, target: &str) -> Tar {
        self.header(
            name,
            Meta {
                mode: 0o777,
                ..ROOT
            },
            0,
            b'2',
            target,
            (0, 0),
        );
        self
    }

    /// A hard link.
    pub fn hardlink(mut self, name: &str, target: &str) -> Tar {
        self.header(name, ROOT, 0, b'1', target, (0, 0));
        self
    }

    /// A character device.
    pub fn chardev(mut self, name: &str, major: u32, minor: u32) -> Tar {
        self.header(name, ROOT, 0, b'3', "", (major, minor));
        self
    }

    /// A FIFO.
    pub fn fifo(mut self, name: &str) -> Tar {
        self.header(name, ROOT, 0, b'6', "", (0, 0));
        self
    }

    /// The standard parts of an image: metadata.yaml (`metadata`), and a rootfs with a
    /// busybox init (so images built here really run).
    pub fn image(self, metadata: &str) -> Tar {
        self.file("metadata.yaml", ROOT, metadata.as_bytes())
            .rootfs("rootfs/")
    }

    /// A minimal runnable rootfs under `prefix` (`rootfs/`, or `` for a split rootfs).
    pub fn rootfs(self, prefix: &str) -> Tar {
        self.rootfs_except(prefix, "")
    }

    /// [`Tar::rootfs`] without the top-level directory `skip` (for the caller to put
    /// something else there).
    pub fn rootfs_except(mut self, prefix: &str, skip: &str) -> Tar {
        let bb = std::fs::read("/bin/busybox").unwrap();
        if !prefix.is_empty() {
            self = self.dir(prefix.trim_end_matches('/'), ROOT);
        }
        for d in [
            "bin", "sbin", "etc", "dev", "proc", "sys", "run", "tmp", "root",
        ] {
            if d != skip {
                self = self.dir(&format!("{prefix}{d}"), ROOT);
            }
        }
        self = self
            .file(
                &format!("{prefix}bin/busybox"),
                Meta {
                    mode: 0o755,
                    ..ROOT
                },
                &bb,
            )
            .hardlink(
                &format!("{prefix}sbin/init"),
                &format!("{prefix}bin/busybox"),
            );
        if skip != "etc" {
            self = self.file(
                &format!("{prefix}etc/inittab"),
                ROOT,
                b"::sysinit:/bin/true\n::respawn:/bin/sleep 1000000\n",
            );
        }
        for applet in [
            "sh", "cat", "echo", "ls", "sleep", "true", "stat", "id", "hostname",
        ] {
            self = self.symlink(&format!("{prefix}bin/{applet}"), "/bin/busybox");
        }
        self
    }

    /// The archive.
    pub fn bytes(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[0u8; 1024]);
        self.out
    }

    /// Write it to `path` (readable by everyone).
    pub fn write(self, path: &Path) -> PathBuf {
        std::fs::write(path, self.bytes()).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path.to_path_buf()
    }
}

/// A metadata.yaml for x86_64 with `extra` appended.
pub fn metadata(extra: &str) -> String {
    format!("architecture: x86_64\ncreation_date: 1700000000\n{extra}")
}

/// A zstd-compressed tarball at `path` holding `metadata.yaml` and one file `rootfs/<name>`
/// of `size` zero bytes, streamed (a bomb: small on disk, large unpacked).
pub fn bomb(path: &Path, name: &str, size: u64) -> PathBuf {
    let f = std::fs::File::create(path).unwrap();
    let mut z = Command::new("zstd")
        .args(["-1", "-q", "-c"])
        .stdin(Stdio::piped())
        .stdout(f)
        .spawn()
        .unwrap();
    let mut w = z.stdin.take().unwrap();
    let head = Tar::new()
        .file("metadata.yaml", ROOT, metadata("").as_bytes())
        .dir("rootfs", ROOT);
    let mut t = head.out;
    let mut h = Tar::new();
    h.header(&format!("rootfs/{name}"), ROOT, size, b'0', "", (0, 0));
    t.extend_from_slice(&h.out);
    w.write_all(&t).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        w.write_all(&zeros[..n]).unwrap();
        left -= n as u64;
    }
    let mut tail = Tar { out: Vec::new() };
    tail.out.resize((512 - (size % 512) as usize) % 512, 0);
    w.write_all(&tail.bytes()).unwrap();
    drop(w);
    assert!(z.wait().unwrap().success());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path.to_path_buf()
}

/// A static probe program for inside containers (built with the host's gcc once per machine
/// and source: `<tmp>/lxr-probe-<hash>`): `keyctl` prints the errno of
/// keyctl/add_key/request_key; `tiocsti` tries to type into every terminal it holds.
pub fn probe() -> PathBuf {
    static P: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        PROBE_C.hash(&mut h);
        let tmp = std::env::temp_dir();
        let dir = tmp.join(format!("lxr-probe-{:016x}", h.finish()));
        let bin = dir.join("probe");
        if bin.exists() {
            return bin;
        }
        // Built aside and renamed into place: tests in other processes may race for it.
        let part = tmp.join(format!("lxr-probe-part-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&part);
        std::fs::create_dir_all(&part).unwrap();
        let src = part.join("probe.c");
        std::fs::write(&src, PROBE_C).unwrap();
        let o = Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(part.join("probe"))
            .arg(&src)
            .output()
            .unwrap();
        assert!(o.status.success(), "gcc: {o:?}");
        std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(part.join("probe"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        if std::fs::rename(&part, &dir).is_err() {
            // Another process got there first.
            let _ = std::fs::remove_dir_all(&part);
        }
        bin
    })
    .clone()
}

const PROBE_C: &str = r#"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "keyctl")) {
        long r = syscall(SYS_keyctl, 0, -3, 0);
        printf("keyctl %d\n", r < 0 ? errno : 0);
        r = syscall(SYS_add_key, "user", "k", "v", 1, -3);
        printf("add_key %d\n", r < 0 ? errno : 0);
        r = syscall(SYS_request_key, "user", "k", 0, 0);
        printf("request_key %d\n", r < 0 ? errno : 0);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "tiocsti")) {
        const char *s = "echo PWNED\n";
        int fds[4] = {0, 1, 2, open("/dev/tty", O_RDWR)};
        for (int i = 0; i < 4; i++) {
            int ok = 0;
            for (const char *c = s; *c; c++)
                if (fds[i] >= 0 && ioctl(fds[i], TIOCSTI, c) == 0) ok++;
            fprintf(stderr, "fd %d typed %d\n", fds[i], ok);
        }
        return 0;
    }
    return 2;
}
"#;

/// Put the probe into a running container at `/probe`.
pub fn install_probe(lxr: &Lxr, name: &str) {
    let bin = std::fs::read(probe()).unwrap();
    let o = lxr.run_with_input(
        &[
            "exec",
            name,
            "--",
            "sh",
            "-c",
            "cat > /probe && chmod 755 /probe",
        ],
        &bin,
    );
    assert!(o.status.success(), "install probe: {o:?}");
}

/// What lxrtest2 gets doing `op` (`read`, `write`, `create`, `list`, `connect`, `lock`) on
/// `path`: `ok` or `errno N`.
pub fn as_other(op: &str, path: &Path) -> String {
    test_user("lxrtest2");
    let o = Command::new("runuser")
        .args([
            "-u",
            "lxrtest2",
            "--",
            "/usr/bin/python3",
            "-c",
            OTHER_PY,
            op,
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

const OTHER_PY: &str = r#"
import fcntl, os, socket, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == "read":
        open(path, "rb").read(1)
    elif op == "write":
        open(path, "ab").write(b"x")
    elif op == "create":
        open(path, "xb")
    elif op == "list":
        os.listdir(path)
    elif op == "connect":
        socket.socket(socket.AF_UNIX).connect(path)
    elif op == "lock":
        fcntl.flock(open(path, "rb"), fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("ok")
except OSError as e:
    print("errno", e.errno)
"#;

/// The pids of every process in the pid namespace whose init is `init` (host pids).
pub fn container_pids(init: u32) -> Vec<u32> {
    let ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let want = ns(init);
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| want.is_some() && ns(*p) == want)
        .collect()
}

/// (pid, fd, device, inode, link) of every descriptor of the container's processes.
pub fn container_fds(init: u32) -> Vec<(u32, u32, u64, u64, String)> {
    let mut out = Vec::new();
    for pid in container_pids(init) {
        let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for e in rd.flatten() {
            let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let link = std::fs::read_link(e.path())
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            if let Ok(md) = std::fs::metadata(e.path()) {
                out.push((pid, fd, md.dev(), md.ino(), link));
            }
        }
    }
    out
}

/// The device number of the host's devpts (`/dev/pts`).
pub fn host_devpts() -> u64 {
    std::fs::metadata("/dev/pts/ptmx").unwrap().dev()
}
