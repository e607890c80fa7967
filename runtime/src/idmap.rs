//! The ids a user may map into its containers (`/etc/subuid`, `/etc/subgid`) and writing a
//! new user namespace's maps with the setuid helpers `newuidmap`/`newgidmap`.
//!
//! A container maps its uid/gid 0–65535 onto the first 65536 ids of the user's range.

use std::path::Path;
use std::process::Command;

use crate::error::{Context, Error, Result};

/// Which ids a helper user namespace maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    /// Only the container's 65536 ids: root there owns nothing of the user's and can change
    /// none of the user's files. Everything that handles an image's content (tar,
    /// unsquashfs, cp, templates) runs so, so an archive can never give a file to the user.
    Container,
    /// The container's ids plus the user's own as id 65536, for lxr's own bookkeeping on trees
    /// that belong to the container (make the directory an unpack goes into, remove a tree).
    /// Never runs a program on an image's content.
    WithUser,
    /// The user's own uid and gid as id 0 and the container's root as id 1, nothing else: root
    /// there *is* the user to cgmanager (which knows callers by host uid, and lets a user reach
    /// its delegation from anywhere) yet may give the user's cgroups to the container's root
    /// (Chown needs root of a namespace that maps both). For that call only.
    UserAsRoot,
}

/// How many ids a container gets.
pub const CONTAINER_IDS: u32 = 65536;

/// One container's mapping: container id `0..count` → host `start..start+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First host id.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

impl Range {
    /// The host id of a container id.
    pub fn host(&self, id: u32) -> Option<u32> {
        (id < self.count).then(|| self.start + id)
    }
}

/// The user's ranges for uids and gids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMaps {
    /// uids.
    pub uid: Range,
    /// gids.
    pub gid: Range,
}

/// What to tell a user without a range in one or both files (`(missing, path, text)` each):
/// the exact `usermod` line, with a range free in both files — each user a range of its own,
/// not the same fixed one suggested to everybody (which would overlap the first user's).
fn missing_hint(name: &str, uids: (bool, &Path, &str), gids: (bool, &Path, &str)) -> String {
    let files: Vec<String> = [uids, gids]
        .iter()
        .filter(|f| f.0)
        .map(|f| f.1.display().to_string())
        .collect();
    let what = format!(
        "no range of {CONTAINER_IDS} ids for {name} in {}",
        files.join(" and ")
    );
    match free_range(&[uids.2, gids.2]) {
        Some(a) => {
            let r = format!("{a}-{}", a + (CONTAINER_IDS - 1));
            let mut cmd = String::from("usermod");
            if uids.0 {
                cmd += &format!(" --add-subuids {r}");
            }
            if gids.0 {
                cmd += &format!(" --add-subgids {r}");
            }
            format!("{what}; ask an admin to run `{cmd} {name}` ({r} is free in both files now)")
        }
        None => format!(
            "{what}; ask an admin to give {name} {CONTAINER_IDS} subordinate uids and gids \
             (usermod --add-subuids/--add-subgids)"
        ),
    }
}

/// The first block of [`CONTAINER_IDS`] ids from 100000 up (useradd's `SUB_UID_MIN`, so on a
/// host where useradd gave out the ranges it is the next of 100000, 165536, 231072, …) that
/// overlaps no entry of any of the subid files' `texts` (whoever the entry is for).
pub fn free_range(texts: &[&str]) -> Option<u32> {
    let mut taken: Vec<(u64, u64)> = texts
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (_, start, count) = (f.next()?, f.next()?, f.next()?);
            let (start, count) = (
                start.trim().parse::<u64>().ok()?,
                count.trim().parse::<u64>().ok()?,
            );
            Some((start, start + count))
        })
        .collect();
    taken.sort_unstable();
    let mut at: u64 = 100_000;
    for (start, end) in taken {
        if start >= at + u64::from(CONTAINER_IDS) {
            break;
        }
        at = at.max(end);
    }
    let last = at + u64::from(CONTAINER_IDS) - 1;
    // newuidmap takes u32 ids, and (u32)-1 is no id.
    (last < u64::from(u32::MAX))
        .then(|| u32::try_from(at).ok())
        .flatten()
}

/// Find the first range of at least [`CONTAINER_IDS`] ids for a user (by name or uid) in a
/// subid file's text.
pub fn find_range(text: &str, name: &str, id: u32) -> Option<Range> {
    let id = id.to_string();
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != name && who != id {
            return None;
        }
        let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
        (count >= CONTAINER_IDS).then_some(Range {
            start,
            count: CONTAINER_IDS,
        })
    })
}

impl IdMaps {
    /// The calling user's ranges from `/etc/subuid` and `/etc/subgid`.
    pub fn for_current_user() -> Result<IdMaps> {
        let uid = nix::unistd::getuid();
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        Self::from_files(
            Path::new("/etc/subuid"),
            Path::new("/etc/subgid"),
            &name,
            uid.as_raw(),
        )
    }

    /// From explicit files (tests).
    pub fn from_files(subuid: &Path, subgid: &Path, name: &str, uid: u32) -> Result<IdMaps> {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let (uids, gids) = (read(subuid), read(subgid));
        let uid_r = find_range(&uids, name, uid);
        let gid_r = find_range(&gids, name, uid);
        match (uid_r, gid_r) {
            (Some(uid), Some(gid)) => Ok(IdMaps { uid, gid }),
            (u, g) => Err(Error::Host(missing_hint(
                name,
                (u.is_none(), subuid, &uids),
                (g.is_none(), subgid, &gids),
            ))),
        }
    }
    /// Start writing the maps of process `pid`'s (new) user namespace with
    /// newuidmap/newgidmap — container ids 0–65535 onto the user's range — and return at
    /// once, so the caller can do something else while the setuid helpers run.
    pub fn start_apply(&self, pid: u32) -> Pending {
        self.spawn(pid, Ids::Container)
    }

    /// Write the maps of `pid`'s new user namespace and wait: the container's ids, plus, for
    /// [`Ids::WithUser`], the user's own uid and gid as id 65536 so that root there may also
    /// act on the user's own files (make a directory for the container's root in the user's
    /// directory, remove a tree again) — what LXC's `chown_mapped_root` does.
    pub fn apply(&self, pid: u32, ids: Ids) -> Result<()> {
        self.spawn(pid, ids).wait()
    }

    /// The map lines (inside, outside, count) of one helper namespace, for uids or gids.
    fn lines(r: Range, own: u32, ids: Ids) -> Vec<[u32; 3]> {
        match ids {
            Ids::Container => vec![[0, r.start, r.count]],
            Ids::WithUser => vec![[0, r.start, r.count], [r.count, own, 1]],
            Ids::UserAsRoot => vec![[0, own, 1], [1, r.start, 1]],
        }
    }

    /// Both helpers run at once: each is a setuid program that parses `/etc/subuid` and
    /// friends (a few ms), and they write different files.
    fn spawn(&self, pid: u32, ids: Ids) -> Pending {
        let mut running = Vec::new();
        for (tool, r, own) in [
            ("newuidmap", self.uid, nix::unistd::getuid().as_raw()),
            ("newgidmap", self.gid, nix::unistd::getgid().as_raw()),
        ] {
            let mut args = vec![pid.to_string()];
            for line in IdMaps::lines(r, own, ids) {
                args.extend(line.iter().map(u32::to_string));
            }
            // Debian's path first: no PATH walk, and no other program of that name.
            let path = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| std::path::Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap_or_else(|| std::path::PathBuf::from(tool));
            let child = Command::new(&path)
                .args(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .ctx(|| format!("run {tool} (install the uidmap package)"));
            running.push((tool, args, child));
        }
        Pending(running)
    }
}

/// newuidmap and newgidmap, running.
#[must_use = "wait for the helpers"]
pub struct Pending(Vec<(&'static str, Vec<String>, Result<std::process::Child>)>);

impl Pending {
    /// Wait for both helpers; the first failure, if any.
    pub fn wait(self) -> Result<()> {
        let mut first_error = None;
        for (tool, args, child) in self.0 {
            let result = child.and_then(|c| {
                c.wait_with_output()
                    .ctx(|| format!("wait for {tool}"))
                    .and_then(|out| {
                        if out.status.success() {
                            Ok(())
                        } else {
                            Err(Error::Host(format!(
                                "{tool} {}: {}",
                                args.join(" "),
                                String::from_utf8_lossy(&out.stderr).trim()
                            )))
                        }
                    })
            });
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_helper_namespace_maps_what_it_says() {
        let r = Range {
            start: 100000,
            count: 65536,
        };
        assert_eq!(
            IdMaps::lines(r, 1001, Ids::Container),
            vec![[0, 100000, 65536]]
        );
        assert_eq!(
            IdMaps::lines(r, 1001, Ids::WithUser),
            vec![[0, 100000, 65536], [65536, 1001, 1]]
        );
        // The user is root; the container's root is 1; no other id of the range.
        assert_eq!(
            IdMaps::lines(r, 1001, Ids::UserAsRoot),
            vec![[0, 1001, 1], [1, 100000, 1]]
        );
    }

    /// The hint suggested `100000-165535` to every user, which overlaps the first user's range
    /// on any host that has one.
    #[test]
    fn no_subuid_range_hint_suggests_a_free_range() {
        assert_eq!(free_range(&["", ""]), Some(100000));
        let uids = "lxrtest1:100000:65536\nlxrtest2:165536:65536\n# x\nbad line\n";
        let gids = "lxrtest1:100000:65536\nlxrtest2:165536:65536\nother:231072:100\n";
        assert_eq!(free_range(&[uids, gids]), Some(231172));
        // A gap big enough is used; one too small is not.
        assert_eq!(free_range(&["a:100000:10\nb:165546:65536\n"]), Some(100010));
        assert_eq!(free_range(&["a:100000:10\nb:165545:65536\n"]), Some(231081));
        assert_eq!(free_range(&["a:165536:65536\n"]), Some(100000));
        assert_eq!(free_range(&["a:100000:4294900000\n"]), None);
        let d = tempfile::tempdir().unwrap();
        let (su, sg) = (d.path().join("subuid"), d.path().join("subgid"));
        std::fs::write(&su, uids).unwrap();
        std::fs::write(&sg, "lxrtest1:100000:65536\ncarol:231072:65536\n").unwrap();
        let e = IdMaps::from_files(&su, &sg, "carol", 1005)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`usermod --add-subuids 296608-362143 carol`"),
            "only the file it is missing from, a range free in both: {e}"
        );
        let e = IdMaps::from_files(&su, &sg, "dave", 1006)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`usermod --add-subuids 296608-362143 --add-subgids 296608-362143 dave`"),
            "{e}"
        );
    }

    #[test]
    fn ranges() {
        let t = "root:100000:65536\nalice:165536:65536\n1002:231072:70000\nbob:300000:10\n";
        assert_eq!(
            find_range(t, "alice", 1001),
            Some(Range {
                start: 165536,
                count: 65536
            })
        );
        assert_eq!(
            find_range(t, "carol", 1002),
            Some(Range {
                start: 231072,
                count: 65536
            })
        );
        assert_eq!(find_range(t, "bob", 1003), None);
        assert_eq!(find_range(t, "dave", 1004), None);
        let r = Range {
            start: 100000,
            count: 65536,
        };
        assert_eq!(r.host(0), Some(100000));
        assert_eq!(r.host(65536), None);
    }
}
