//! Changing the hierarchy: create and remove cgroups, write control files, move processes,
//! hand cgroups to other users (chown/chmod, the kernel's delegation file set), and list what
//! a cgroup holds. Everything is opened through [`crate::beneath`] — from the hierarchy's
//! mount, never through a symlink or another mount — and changed through the descriptor it
//! got. Deciding *whether* a caller may do something is the job of whoever calls these
//! (cgmanager's policy, lxr's launcher).

use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use crate::beneath;
use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::layout::Version;

/// Where the kernel lists the files a v2 delegatee must own (Linux ≥ 4.15).
pub const DELEGATE_LIST: &str = "/sys/kernel/cgroup/delegate";

/// One regular file of a cgroup, as `ListKeys` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// File name.
    pub name: String,
    /// Owner (host uid).
    pub uid: u32,
    /// Group (host gid).
    pub gid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
}

impl Cgroup {
    /// A direct or deeper descendant (`rel` relative to this cgroup, `/`-separated).
    pub fn descendant(&self, rel: &str) -> Result<Cgroup> {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            return Ok(self.clone());
        }
        let joined = if self.rel.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.rel)
        };
        Cgroup::new(self.version, &self.mount_point, &joined)
    }

    /// Depth below the hierarchy root (root = 0).
    pub fn depth(&self) -> usize {
        if self.rel.is_empty() {
            0
        } else {
            self.rel.split('/').count()
        }
    }

    /// True if `self` is `other` or below it (component-wise: `/a` is not below `/a2`).
    pub fn is_within(&self, other: &Cgroup) -> bool {
        self.mount_point == other.mount_point
            && (other.rel.is_empty()
                || self.rel == other.rel
                || self
                    .rel
                    .strip_prefix(&other.rel)
                    .is_some_and(|r| r.starts_with('/')))
    }

    /// The cgroup's path as `/proc/<pid>/cgroup` would show it from the hierarchy root.
    pub fn abs_path(&self) -> String {
        format!("/{}", self.rel)
    }

    /// True if the directory exists (opened beneath: a symlink there is no cgroup).
    pub fn exists(&self) -> bool {
        beneath::open(self, None, OFlag::O_PATH).is_ok()
    }

    /// `mkdir` with `mode` in the parent opened beneath; `Ok(false)` if it already existed.
    pub fn create(&self, mode: u32) -> Result<bool> {
        let (parent, name) = beneath::parent_of(self)?;
        match nix::sys::stat::mkdirat(
            parent.as_fd(),
            name.as_str(),
            Mode::from_bits_truncate(mode),
        ) {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::EEXIST) => Ok(false),
            Err(e) => Err(Error::change("mkdir", self.dir(), e.into())),
        }
    }

    /// Read a control file opened beneath.
    fn read_beneath(&self, key: &str) -> Result<String> {
        let path = self.file(key);
        let fd = beneath::open(self, Some(key), OFlag::O_RDONLY)?;
        let mut s = String::new();
        fs::File::from(fd)
            .read_to_string(&mut s)
            .map_err(|source| Error::Io { path, source })?;
        Ok(s)
    }

    /// A new v1 cpuset cgroup starts with no CPUs and no memory nodes, and no process can
    /// enter it until they are set: copy the parent's (what `cgroup.clone_children` would
    /// have done). Does nothing elsewhere.
    pub fn inherit_cpuset(&self) -> Result<()> {
        if self.version != Version::V1 || beneath::stat(self, Some("cpuset.cpus")).is_err() {
            return Ok(());
        }
        let Some(parent) = self.parent() else {
            return Ok(());
        };
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if self.read_beneath(f)?.trim().is_empty() {
                let v = parent.read_beneath(f)?;
                self.write(f, v.trim())?;
            }
        }
        Ok(())
    }

    /// `rmdir` this cgroup (fails with EBUSY if it has processes or children).
    pub fn remove(&self) -> Result<()> {
        let (parent, name) = beneath::parent_of(self)?;
        nix::unistd::unlinkat(
            parent.as_fd(),
            name.as_str(),
            nix::unistd::UnlinkatFlags::RemoveDir,
        )
        .map_err(|e| Error::change("rmdir", self.dir(), e.into()))
    }

    /// Remove this cgroup and every descendant, deepest first. Returns how many were removed.
    /// Stops at the first failure (a populated cgroup answers EBUSY).
    pub fn remove_recursive(&self) -> Result<usize> {
        let mut n = 0;
        for child in self.children()? {
            n += self.descendant(&child)?.remove_recursive()?;
        }
        self.remove()?;
        Ok(n + 1)
    }

    /// Every entry of the directory (opened beneath) with its (not followed) metadata.
    fn entries(&self) -> Result<Vec<(String, nix::sys::stat::FileStat)>> {
        let dir = self.dir();
        let io = |e: nix::errno::Errno| Error::Io {
            path: dir.clone(),
            source: e.into(),
        };
        let fd = beneath::open(self, None, OFlag::O_RDONLY)?;
        let mut d = nix::dir::Dir::from_fd(fd).map_err(io)?;
        let mut names = Vec::new();
        for entry in d.iter() {
            let entry = entry.map_err(io)?;
            if let Ok(name) = entry.file_name().to_str() {
                if name != "." && name != ".." {
                    names.push(name.to_string());
                }
            }
        }
        let mut out = Vec::new();
        for name in names {
            match nix::sys::stat::fstatat(d.as_fd(), name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => out.push((name, st)),
                // Removed while listed.
                Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(io(e)),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Names of the child cgroups, sorted.
    pub fn children(&self) -> Result<Vec<String>> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|(_, st)| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .map(|(name, _)| name)
            .collect())
    }

    /// The regular files of the cgroup with owner and mode, sorted by name.
    pub fn keys(&self) -> Result<Vec<Key>> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|(_, st)| st.st_mode & libc::S_IFMT == libc::S_IFREG)
            .map(|(name, st)| Key {
                name,
                uid: st.st_uid,
                gid: st.st_gid,
                mode: st.st_mode & 0o7777,
            })
            .collect())
    }

    /// Write `value` to a control file in one `write(2)`, as the kernel expects.
    pub fn write(&self, key: &str, value: &str) -> Result<()> {
        let path = self.file(key);
        let mut f = fs::File::from(beneath::open(self, Some(key), OFlag::O_WRONLY)?);
        f.write(value.as_bytes())
            .map_err(|e| Error::change("write", &path, e))
            .and_then(|n| {
                if n == value.len() {
                    Ok(())
                } else {
                    Err(Error::change(
                        "write",
                        &path,
                        std::io::Error::from_raw_os_error(libc::EIO),
                    ))
                }
            })
    }

    /// The file that moves whole processes: `cgroup.procs` (v1 and v2).
    pub fn procs_file(&self) -> PathBuf {
        self.file("cgroup.procs")
    }

    /// Move a process (its whole thread group) into this cgroup.
    pub fn move_process(&self, pid: u32) -> Result<()> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// Processes (thread-group ids) in this cgroup, sorted and deduplicated.
    pub fn procs(&self) -> Result<Vec<u32>> {
        self.ids(&self.procs_file())
    }

    /// Threads (task ids) in this cgroup, sorted and deduplicated: v1 `tasks`, v2
    /// `cgroup.threads`.
    pub fn threads(&self) -> Result<Vec<u32>> {
        self.ids(&self.file(match self.version {
            Version::V1 => "tasks",
            Version::V2 => "cgroup.threads",
        }))
    }

    fn ids(&self, path: &Path) -> Result<Vec<u32>> {
        let key = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::parse(path, "no file name"))?;
        let text = self.read_beneath(key)?;
        let mut pids = text
            .split_ascii_whitespace()
            .map(|t| {
                t.parse::<u32>()
                    .map_err(|_| Error::parse(path, format!("bad pid {t:?}")))
            })
            .collect::<Result<Vec<u32>>>()?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Processes in this cgroup and all its descendants, sorted and deduplicated.
    pub fn procs_recursive(&self) -> Result<Vec<u32>> {
        self.recursive(&Cgroup::procs)
    }

    /// Threads in this cgroup and all its descendants, sorted and deduplicated.
    pub fn threads_recursive(&self) -> Result<Vec<u32>> {
        self.recursive(&Cgroup::threads)
    }

    fn recursive(&self, ids: &dyn Fn(&Cgroup) -> Result<Vec<u32>>) -> Result<Vec<u32>> {
        let mut all = ids(self)?;
        for child in self.children()? {
            match self.descendant(&child)?.recursive(ids) {
                Ok(p) => all.extend(p),
                // A child removed while we walk is not an error.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// The files a new owner of this cgroup gets besides the directory: v1 `tasks` and
    /// `cgroup.procs`; v2 the kernel's delegation list (those present in this cgroup).
    pub fn delegation_files(&self, delegate_list: &Path) -> Vec<String> {
        match self.version {
            Version::V1 => vec!["tasks".into(), "cgroup.procs".into()],
            Version::V2 => {
                let listed = fs::read_to_string(delegate_list).unwrap_or_else(|_| {
                    // Kernels before 4.15 have no list; these three are the documented minimum.
                    "cgroup.procs\ncgroup.threads\ncgroup.subtree_control\n".into()
                });
                listed
                    .split_ascii_whitespace()
                    .filter(|f| beneath::stat(self, Some(f)).is_ok())
                    .map(str::to_string)
                    .collect()
            }
        }
    }

    /// chown the directory and the named files (missing files are skipped).
    pub fn chown(&self, files: &[String], uid: u32, gid: u32) -> Result<()> {
        let own = |file: Option<&str>| -> Result<()> {
            let path = file.map_or_else(|| self.dir(), |f| self.file(f));
            let fd = beneath::open(self, file, OFlag::O_PATH)?;
            nix::unistd::fchownat(
                fd.as_fd(),
                "",
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
                AtFlags::AT_EMPTY_PATH,
            )
            .map_err(|e| Error::change("chown", path, e.into()))
        };
        own(None)?;
        self.chown_files(files, uid, gid)
    }

    /// chown the named files only, not the directory (missing files are skipped).
    pub fn chown_files(&self, files: &[String], uid: u32, gid: u32) -> Result<()> {
        for f in files {
            let path = self.file(f);
            let fd = match beneath::open(self, Some(f), OFlag::O_PATH) {
                Err(e) if e.is_not_found() => continue,
                r => r?,
            };
            nix::unistd::fchownat(
                fd.as_fd(),
                "",
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
                AtFlags::AT_EMPTY_PATH,
            )
            .map_err(|e| Error::change("chown", path, e.into()))?;
        }
        Ok(())
    }

    /// chown the directory and every file in it (a cgroup created on someone's behalf).
    pub fn chown_all(&self, uid: u32, gid: u32) -> Result<()> {
        let names: Vec<String> = self.keys()?.into_iter().map(|k| k.name).collect();
        self.chown(&names, uid, gid)
    }

    /// v2: the controllers this cgroup may use (`cgroup.controllers`: what its parent enables).
    pub fn controllers(&self) -> Result<Vec<String>> {
        self.word_list("cgroup.controllers")
    }

    /// v2: the controllers this cgroup enables for its children (`cgroup.subtree_control`).
    pub fn subtree_control(&self) -> Result<Vec<String>> {
        self.word_list("cgroup.subtree_control")
    }

    fn word_list(&self, key: &str) -> Result<Vec<String>> {
        Ok(self
            .read_beneath(key)?
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect())
    }

    /// v2: enable controllers for the children (`+a +b` to `cgroup.subtree_control`, one
    /// write). The kernel refuses with EBUSY while the cgroup has processes of its own (the
    /// no-internal-process rule; the root is exempt), and with ENOENT a controller its own
    /// `cgroup.controllers` lacks.
    pub fn enable_controllers<S: AsRef<str>>(&self, controllers: &[S]) -> Result<()> {
        if controllers.is_empty() {
            return Ok(());
        }
        let line = controllers
            .iter()
            .map(|c| format!("+{}", c.as_ref()))
            .collect::<Vec<_>>()
            .join(" ");
        self.write("cgroup.subtree_control", &line)
    }

    /// Whether whoever manages the cgroup above marked it as delegated: `trusted.delegate`, or
    /// when that is absent `user.delegate`, is `1` — how systemd marks the cgroup of a unit
    /// with `Delegate=yes` (the same test as its `cg_is_delegated`).
    pub fn is_delegated(&self) -> bool {
        let Ok(fd) = beneath::open(self, None, OFlag::O_RDONLY | OFlag::O_DIRECTORY) else {
            return false;
        };
        ["trusted.delegate", "user.delegate"]
            .iter()
            .find_map(|name| get_xattr(&fd, name))
            .is_some_and(|v| v == b"1")
    }

    /// chmod the directory (`file` = `None`) or one of its files.
    pub fn chmod(&self, file: Option<&str>, mode: u32) -> Result<()> {
        let p = match file {
            Some(f) => self.file(f),
            None => self.dir(),
        };
        let fd = beneath::open(self, file, OFlag::O_PATH)?;
        fs::set_permissions(beneath::fd_path(&fd), fs::Permissions::from_mode(mode))
            .map_err(|e| Error::change("chmod", p, e))
    }
}

/// An extended attribute of an open file (at most 16 bytes of it); `None` if it is not set.
fn get_xattr(fd: &impl AsFd, name: &str) -> Option<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let name = std::ffi::CString::new(name).ok()?;
    let mut buf = [0u8; 16];
    // SAFETY: `name` is NUL-terminated and `buf` is valid for `buf.len()` bytes, of which the
    // kernel writes at most that many (ERANGE if the value is longer).
    let n = unsafe {
        libc::fgetxattr(
            fd.as_fd().as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    Some(buf.get(..n)?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cg(root: &Path, rel: &str) -> Cgroup {
        Cgroup::new(Version::V1, root, rel).unwrap()
    }

    #[test]
    fn within_is_component_wise() {
        let r = Path::new("/m");
        assert!(cg(r, "a/b").is_within(&cg(r, "a")));
        assert!(cg(r, "a").is_within(&cg(r, "a")));
        assert!(cg(r, "a").is_within(&cg(r, "")));
        assert!(!cg(r, "a2").is_within(&cg(r, "a")));
        assert!(!cg(r, "a").is_within(&cg(r, "a/b")));
        assert!(!cg(Path::new("/n"), "a").is_within(&cg(r, "a")));
    }

    #[test]
    fn descendant_and_depth() {
        let r = Path::new("/m");
        let a = cg(r, "a");
        assert_eq!(a.descendant("b/c").unwrap().rel, "a/b/c");
        assert_eq!(a.descendant("").unwrap().rel, "a");
        assert!(a.descendant("../x").is_err());
        assert_eq!(a.descendant("b/c").unwrap().depth(), 3);
        assert_eq!(cg(r, "").depth(), 0);
        assert_eq!(cg(r, "").descendant("x").unwrap().abs_path(), "/x");
    }

    #[test]
    fn create_list_procs_keys_on_a_fixture() {
        let t = tempfile::tempdir().unwrap();
        let root = cg(t.path(), "");
        let a = root.descendant("a").unwrap();
        assert!(a.create(0o755).unwrap());
        assert!(!a.create(0o755).unwrap());
        a.descendant("z").unwrap().create(0o755).unwrap();
        a.descendant("b").unwrap().create(0o755).unwrap();
        fs::write(a.file("cgroup.procs"), "12\n3\n12\n").unwrap();
        fs::write(a.descendant("b").unwrap().file("cgroup.procs"), "7\n").unwrap();
        fs::write(a.descendant("z").unwrap().file("cgroup.procs"), "").unwrap();
        assert_eq!(a.children().unwrap(), vec!["b", "z"]);
        assert_eq!(a.procs().unwrap(), vec![3, 12]);
        assert_eq!(a.procs_recursive().unwrap(), vec![3, 7, 12]);
        let keys = a.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].name, "cgroup.procs");
        a.chmod(Some("cgroup.procs"), 0o600).unwrap();
        assert_eq!(a.keys().unwrap()[0].mode, 0o600);
    }

    #[test]
    fn v2_controller_files_on_a_fixture() {
        let t = tempfile::tempdir().unwrap();
        let a = Cgroup::new(Version::V2, t.path(), "").unwrap();
        fs::write(a.file("cgroup.controllers"), "cpu memory pids\n").unwrap();
        fs::write(a.file("cgroup.subtree_control"), "").unwrap();
        assert_eq!(a.controllers().unwrap(), ["cpu", "memory", "pids"]);
        assert!(a.subtree_control().unwrap().is_empty());
        a.enable_controllers(&["memory", "pids"]).unwrap();
        // What the kernel is given (it shows the result as "memory pids").
        assert_eq!(
            fs::read_to_string(a.file("cgroup.subtree_control")).unwrap(),
            "+memory +pids"
        );
        a.enable_controllers::<&str>(&[]).unwrap();
        // A directory nobody marked is not delegated.
        assert!(!a.is_delegated());
    }

    #[test]
    fn malformed_procs_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let a = cg(t.path(), "");
        fs::write(a.file("cgroup.procs"), "1\nx\n").unwrap();
        assert!(a.procs().is_err());
    }

    #[test]
    fn v2_delegation_files_follow_the_kernel_list() {
        let t = tempfile::tempdir().unwrap();
        let a = Cgroup::new(Version::V2, t.path(), "").unwrap();
        for f in ["cgroup.procs", "cgroup.threads", "memory.reclaim"] {
            fs::write(a.file(f), "").unwrap();
        }
        let list = t.path().join("delegate");
        fs::write(
            &list,
            "cgroup.procs\ncgroup.threads\ncgroup.subtree_control\nmemory.reclaim\n",
        )
        .unwrap();
        assert_eq!(
            a.delegation_files(&list),
            vec!["cgroup.procs", "cgroup.threads", "memory.reclaim"]
        );
        let v1 = cg(t.path(), "");
        assert_eq!(v1.delegation_files(&list), vec!["tasks", "cgroup.procs"]);
    }
}
