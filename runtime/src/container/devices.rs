//! A container's devices as `config.yaml` keeps them (name → `type` and options, Incus's
//! shape): proxy devices ([`crate::net::proxy`]) and disk devices — a host directory or file
//! of the user's bound into the container ([`Disk`]; the bind itself is
//! [`crate::launch::disks`]).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// Device name → its options (`type` among them).
pub type Devices = BTreeMap<String, BTreeMap<String, String>>;

/// A disk device: `source` on the host bound at `path` in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The device's name.
    pub name: String,
    /// Absolute host path (a directory or a regular file the user owns).
    pub source: PathBuf,
    /// Where in the container, relative to its `/` (plain components only).
    pub path: PathBuf,
    /// A read-only bind.
    pub readonly: bool,
}

impl Disk {
    /// Open the source for binding, by descriptor (`O_PATH`, the last component not followed):
    /// it must be a directory or regular file owned by the user running lxr. Checked at `device
    /// add` and again at each start, on the descriptor that is then bound — a path can change
    /// between the two, and lxr must never hand a container another user's or root's files.
    pub fn open_source(&self) -> Result<OwnedFd> {
        let fd = nix::fcntl::open(
            &self.source,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            Error::Usage(format!(
                "device {}: source {}: {}",
                self.name,
                self.source.display(),
                std::io::Error::from(e)
            ))
        })?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| Error::Os {
            what: format!("stat {}", self.source.display()),
            source: e.into(),
        })?;
        let kind = st.st_mode & libc::S_IFMT;
        if kind != libc::S_IFDIR && kind != libc::S_IFREG {
            return Err(Error::Usage(format!(
                "device {}: source {} is not a directory or a regular file (a symlink is not \
                 followed)",
                self.name,
                self.source.display()
            )));
        }
        let me = nix::unistd::getuid().as_raw();
        if st.st_uid != me {
            return Err(Error::Usage(format!(
                "device {}: source {} belongs to uid {}, not to you (uid {me}): only your own \
                 files can be bound into a container",
                self.name,
                self.source.display(),
                st.st_uid
            )));
        }
        Ok(fd)
    }

    /// Whether the source is a directory (else a regular file).
    pub fn source_is_dir(fd: &OwnedFd) -> bool {
        nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    }
}

/// Options from `config device add`'s `key=value` arguments.
pub fn options(kind: &str, args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut o = BTreeMap::from([("type".to_string(), kind.to_string())]);
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("{a:?}: expected key=value")))?;
        if k == "type" || o.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Error::Usage(format!("{k}= given twice")));
        }
    }
    Ok(o)
}

/// Check one device's options.
pub fn check(name: &str, opts: &BTreeMap<String, String>) -> Result<()> {
    crate::net::proxy::check_name(name)?;
    match opts.get("type").map(String::as_str) {
        Some("proxy") => {
            let args: Vec<String> = opts
                .iter()
                .filter(|(k, _)| *k != "type")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            crate::net::proxy::from_args(name, "proxy", &args).map(drop)
        }
        Some("disk") => disk(name, opts).map(drop),
        Some(t) => Err(Error::Usage(format!(
            "device {name}: type {t:?} is not supported by lxr (proxy, disk)"
        ))),
        None => Err(Error::Usage(format!("device {name}: no type"))),
    }
}

/// Check every device.
pub fn check_all(devices: &Devices) -> Result<()> {
    devices.iter().try_for_each(|(n, o)| check(n, o))
}

/// A disk device from its options.
pub fn disk(name: &str, opts: &BTreeMap<String, String>) -> Result<Disk> {
    for k in opts.keys() {
        if !["type", "source", "path", "readonly"].contains(&k.as_str()) {
            return Err(Error::Usage(format!(
                "device {name}: a disk takes source=, path= and readonly=, not {k}="
            )));
        }
    }
    let get = |k: &str| {
        opts.get(k)
            .ok_or_else(|| Error::Usage(format!("device {name}: a disk needs {k}=")))
    };
    let source = PathBuf::from(get("source")?);
    if !source.is_absolute() || source.components().any(|c| c == Component::ParentDir) {
        return Err(Error::Usage(format!(
            "device {name}: source={:?} must be an absolute host path without ..",
            source.display()
        )));
    }
    let path = inside(name, get("path")?)?;
    let readonly = match opts.get("readonly") {
        None => false,
        Some(v) => super::schema::parse_bool(v).ok_or_else(|| {
            Error::Usage(format!(
                "device {name}: readonly={v:?} is not true or false"
            ))
        })?,
    };
    Ok(Disk {
        name: name.to_string(),
        source,
        path,
        readonly,
    })
}

/// `path=` as a path below the container's `/`: absolute, no `..`, not `/` itself.
fn inside(name: &str, p: &str) -> Result<PathBuf> {
    let bad = || {
        Error::Usage(format!(
            "device {name}: path={p:?} must be an absolute path in the container, without .. \
             and not / itself"
        ))
    };
    let p = Path::new(p);
    if !p.is_absolute() {
        return Err(bad());
    }
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => rel.push(n),
            _ => return Err(bad()),
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(bad());
    }
    Ok(rel)
}

/// Every disk device (others skipped; ones that do not check out are errors).
pub fn disks(devices: &Devices) -> Result<Vec<Disk>> {
    devices
        .iter()
        .filter(|(_, o)| o.get("type").map(String::as_str) == Some("disk"))
        .map(|(n, o)| disk(n, o))
        .collect()
}

/// `data: disk /home/u/dir -> /mnt/data (readonly)`, `web: proxy …`: one line for `device list`.
pub fn describe(name: &str, opts: &BTreeMap<String, String>) -> String {
    match opts.get("type").map(String::as_str) {
        Some("disk") => match disk(name, opts) {
            Ok(d) => format!(
                "{name}: disk {} -> /{}{}",
                d.source.display(),
                d.path.display(),
                if d.readonly { " (readonly)" } else { "" }
            ),
            Err(e) => format!("{name}: disk (invalid: {e})"),
        },
        Some("proxy") => {
            let mut k = BTreeMap::new();
            for (o, v) in opts {
                k.insert(
                    format!("{}{name}.{o}", crate::net::proxy::PREFIX),
                    v.clone(),
                );
            }
            match crate::net::proxy::all(&k).first() {
                Some(p) => p.describe(),
                None => format!("{name}: proxy (invalid)"),
            }
        }
        Some(t) => format!("{name}: {t}"),
        None => format!("{name}: (no type)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn disks_are_checked() {
        let d = disk(
            "data",
            &o(&[
                ("type", "disk"),
                ("source", "/home/u/d"),
                ("path", "/mnt/data/"),
                ("readonly", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(d.path, PathBuf::from("mnt/data"));
        assert!(d.readonly);
        for bad in [
            o(&[("type", "disk"), ("source", "rel"), ("path", "/x")]),
            o(&[("type", "disk"), ("source", "/a/../etc"), ("path", "/x")]),
            o(&[("type", "disk"), ("source", "/a"), ("path", "/x/../../etc")]),
            o(&[("type", "disk"), ("source", "/a"), ("path", "/")]),
            o(&[("type", "disk"), ("source", "/a"), ("path", "x")]),
            o(&[
                ("type", "disk"),
                ("source", "/a"),
                ("path", "/x"),
                ("readonly", "perhaps"),
            ]),
            o(&[
                ("type", "disk"),
                ("source", "/a"),
                ("path", "/x"),
                ("pool", "p"),
            ]),
            o(&[("type", "disk"), ("path", "/x")]),
            o(&[("type", "nic")]),
        ] {
            assert!(check("d", &bad).is_err(), "{bad:?}");
        }
        assert!(check(
            "web",
            &o(&[
                ("type", "proxy"),
                ("listen", "tcp:127.0.0.1:8080"),
                ("connect", "tcp:127.0.0.1:80")
            ])
        )
        .is_ok());
    }
}
