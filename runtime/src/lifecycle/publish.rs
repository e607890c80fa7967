//! `publish`: an image in the user's store made from a stopped container (or a snapshot),
//! as `incus publish` makes one: a unified tarball ([`crate::image::pack`]) whose
//! `metadata.yaml` is the source image's (architecture, properties, templates, with
//! templates/ carried over) with a new `creation_date` and the given properties, then
//! imported exactly as `lxr image import` imports a file ([`crate::image::import`]: the same
//! listing checks, size limit and layout checks), so its fingerprint is the sha256 of the
//! tarball and `image export` gives that tarball back.
//!
//! The tarball is made in `<data>/images/.publish-<pid>/` (the user's) and moved into the
//! image's `export/` by the import (not copied: no second copy on disk); a killed publish's
//! directory is removed by the next publish. A running container is refused unless `force`:
//! then it is stopped, published and started again (an ephemeral one is not deleted by that
//! stop).

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Containers, Halt};
use crate::beneath::{Dir, Kind};
use crate::container::{check_name, Config, State};
use crate::error::{Context, Error, Result};
use crate::idmap::{IdMaps, Ids};
use crate::image::import::{self, Imported};
use crate::image::pack::{pack, Compression, Contents};
use crate::image::store::check_alias;
use crate::image::{Source, Store};
use crate::lock::Lock;
use crate::userns::{remove_as_root, run_as_root};

/// How to publish.
#[derive(Debug, Clone)]
pub struct Publish {
    /// Aliases for the new image.
    pub aliases: Vec<String>,
    /// Stop a running container first (and start it again after).
    pub force: bool,
    /// Move an alias that names another image to the new one (the old image stays).
    pub reuse: bool,
    /// The tarball's compression.
    pub compression: Compression,
    /// `KEY=VALUE` properties for `metadata.yaml` (`description=…`).
    pub properties: Vec<String>,
    /// The most the image may unpack to (as `image import --max-size`).
    pub max_size: u64,
}

/// Check a property: `KEY=VALUE`, the key of letters, digits and `._-`, no control characters
/// in the value.
fn property(kv: &str) -> Result<(String, String)> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| Error::Usage(format!("{kv:?}: properties are KEY=VALUE (description=…)")))?;
    let key_ok = !k.is_empty()
        && k.len() <= 128
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !key_ok || v.chars().any(char::is_control) || v.len() > 4096 {
        return Err(Error::Usage(format!(
            "{:?}: a property's key is letters, digits and ._- (at most 128), its value one \
             line (at most 4096 bytes)",
            crate::text::line(kv)
        )));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `metadata.yaml` of the new image: the source image's (`source`, already checked when it
/// was imported) or a minimal one, with `creation_date` now, no `expiry_date`, and
/// `properties` merged in.
pub fn metadata(source: Option<&str>, props: &[(String, String)], now: i64) -> Result<String> {
    use serde_yaml_ng::{Mapping, Value};
    let mut m: Mapping = match source {
        Some(text) => serde_yaml_ng::from_str(text)
            .map_err(|e| Error::Usage(format!("the source image's metadata.yaml: {e}")))?,
        None => Mapping::new(),
    };
    let s = |v: &str| Value::String(v.to_string());
    if !m.contains_key("architecture") {
        m.insert(s("architecture"), s(std::env::consts::ARCH));
    }
    m.insert(s("creation_date"), Value::Number(now.into()));
    m.remove("expiry_date");
    let mut p = match m.remove("properties") {
        Some(Value::Mapping(p)) => p,
        _ => Mapping::new(),
    };
    for (k, v) in props {
        p.insert(s(k), s(v));
    }
    m.insert(s("properties"), Value::Mapping(p));
    serde_yaml_ng::to_string(&m).map_err(|e| Error::Host(format!("encode metadata.yaml: {e}")))
}

impl Containers {
    /// Publish `name` (or its snapshot `snap`) as an image; see the module.
    pub fn publish(&self, name: &str, snap: Option<&str>, how: &Publish) -> Result<Imported> {
        check_name(name)?;
        for a in &how.aliases {
            check_alias(a)?;
        }
        let props = how
            .properties
            .iter()
            .map(|p| property(p))
            .collect::<Result<Vec<_>>>()?;
        let lock = Lock::container(&self.paths, name)?;
        self.existing(name)?;
        if !how.reuse {
            // Before anything is stopped or packed.
            let table = Store::new(self.paths.data.join("images")).aliases()?;
            if let Some((a, fp)) = how.aliases.iter().find_map(|a| table.get_key_value(a)) {
                return Err(Error::Usage(format!(
                    "alias {a} already names image {}: publish --reuse moves it",
                    &fp[..12.min(fp.len())]
                )));
            }
        }
        let running = snap.is_none() && State::load(&self.paths.state(name))?.is_some();
        if running {
            if !how.force {
                return Err(Error::Usage(format!(
                    "{name} is running: stop it first, or use publish --force (which stops it \
                     and starts it again)"
                )));
            }
            self.keep_across_stop(name);
            self.halt(
                name,
                Halt {
                    force: false,
                    timeout: std::time::Duration::from_secs(30),
                },
            )?;
        }
        let published = self.publish_stopped(name, snap, how, &props);
        if running {
            if let Err(e) = self.start_locked(name, &lock) {
                return Err(Error::Setup(format!(
                    "{}; starting {name} again failed: {e}",
                    match &published {
                        Ok(Imported::New(fp) | Imported::Existing(fp)) =>
                            format!("published as {fp}"),
                        Err(p) => format!("publishing failed: {p}"),
                    }
                )));
            }
        }
        published
    }

    fn publish_stopped(
        &self,
        name: &str,
        snap: Option<&str>,
        how: &Publish,
        props: &[(String, String)],
    ) -> Result<Imported> {
        self.paths.ensure()?;
        let images = self.paths.data.join("images");
        let store = Store::new(images.clone());
        let maps = IdMaps::for_current_user()?;
        // The source image's metadata and templates, if it is still in the store: by the
        // fingerprint the container recorded (its alias may name another image by now); a
        // container of an older lxr recorded only the name.
        let cfg = Config::load(&self.paths.container(name).join("config.yaml"))?;
        let fp = if cfg.image.fingerprint.is_empty() {
            match cfg.image.alias.as_deref().map(|a| store.resolve(a)) {
                Some(Ok(Source::Stored(fp))) => Some(fp),
                _ => None,
            }
        } else {
            Some(cfg.image.fingerprint.clone())
        };
        let source = fp.and_then(|fp| Dir::open(&store.image(&fp)).ok());
        let source_meta = match &source {
            Some(d) => Some(d.read_text("metadata.yaml", crate::image::scan::METADATA_MAX)?),
            None => None,
        };
        let templates = match &source {
            Some(d) if d.kind("templates")? == Some(Kind::Dir) => Some(d.open_dir("templates")?),
            _ => None,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let text = metadata(source_meta.as_deref(), props, now)?;

        remove_stale(&images, &maps);
        let work = images.join(format!(".publish-{}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&work)
            .ctx(|| format!("create {}", work.display()))?;
        let result = (|| {
            let wdir = Dir::open(&work)?;
            run_as_root(&maps, Ids::WithUser, || {
                wdir.mkdir("stage", 0o755)?;
                wdir.chown("stage", 0, 0)
            })?;
            let stage = wdir.open_dir("stage")?;
            let out_path = work.join(format!("image{}", how.compression.extension()));
            let out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out_path)
                .ctx(|| format!("create {}", out_path.display()))?;
            self.with_rootfs(name, snap, |root| {
                let c = Contents {
                    root,
                    stage: &stage,
                    metadata: &text,
                    templates: templates.as_ref(),
                };
                pack(&c, out, how.compression, how.max_size)
            })?;
            if how.reuse {
                release_aliases(&store, &how.aliases)?;
            }
            import::import_own(&store, &maps, &out_path, &how.aliases, how.max_size)
        })();
        let _ = remove_as_root(&maps, &work);
        result
    }
}

/// `--reuse`: the aliases stop naming whatever they named.
fn release_aliases(store: &Store, aliases: &[String]) -> Result<()> {
    let _lock = store.lock()?;
    let mut table = store.aliases()?;
    let before = table.len();
    for a in aliases {
        table.remove(a);
    }
    if table.len() != before {
        store.save_aliases(&table)?;
    }
    Ok(())
}

/// Work directories of publishes that were killed (their pid is gone).
fn remove_stale(images: &std::path::Path, maps: &IdMaps) {
    let Ok(rd) = std::fs::read_dir(images) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        let Some(pid) = n.strip_prefix(".publish-") else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = remove_as_root(maps, &e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keeps_the_source_and_takes_properties() {
        let src = "architecture: x86_64\ncreation_date: 1\nexpiry_date: 2\nproperties:\n  os: \
                   Debian\n  description: old\ntemplates:\n  /etc/hostname:\n    when: [create]\n    \
                   template: hostname.tpl\n    create_only: true\n";
        let out = metadata(Some(src), &[("description".into(), "new one".into())], 99).unwrap();
        let m = crate::image::metadata::Metadata::parse(&out).unwrap();
        assert_eq!(m.creation_date, 99);
        assert_eq!(m.property("os").as_deref(), Some("Debian"));
        assert_eq!(m.property("description").as_deref(), Some("new one"));
        assert_eq!(m.templates["/etc/hostname"].template, "hostname.tpl");
        assert!(out.contains("create_only: true") && !out.contains("expiry_date"));
        let bare = metadata(None, &[], 5).unwrap();
        assert!(crate::image::metadata::Metadata::parse(&bare)
            .unwrap()
            .runs_here());
    }

    #[test]
    fn properties_are_checked() {
        assert!(property("description=My image, v2").is_ok());
        for bad in ["nokey", "=x", "a b=c", "k=line\nbreak", "k=\u{1b}[31m"] {
            assert!(property(bad).is_err(), "{bad:?}");
        }
    }
}
