//! `lxr image import|list|delete|export|alias`: the user's LXD/Incus image store.

use serde::Serialize;

use super::format::FormatArg;
use crate::error::{Error, Result};
use crate::idmap::IdMaps;
use crate::image::import::{self, Imported};
use crate::image::store::check_alias;
use crate::image::{Source, Store, BUILTIN};
use crate::paths::Paths;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Import a unified image tarball, or a split image (metadata tarball + rootfs tarball
    /// or squashfs).
    Import {
        /// The unified tarball, or the metadata tarball of a split image.
        file: std::path::PathBuf,
        /// The rootfs of a split image.
        rootfs: Option<std::path::PathBuf>,
        /// Alias to give the image (repeatable).
        #[arg(long)]
        alias: Vec<String>,
        /// Refuse an image that unpacks to more than this (e.g. 2GiB; default
        /// $LXR_IMAGE_MAX_SIZE, else 8GiB). It is also refused when the disk lacks the room.
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
    },
    /// List images.
    #[command(visible_alias = "ls")]
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Delete images (by alias or fingerprint prefix).
    #[command(visible_alias = "rm")]
    Delete {
        /// Images.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Write an image's file(s) as they were imported (or published) into a directory:
    /// `<fp>.tar.xz` for a unified image, `meta-<fp>.tar.xz` + `<fp>.squashfs` for a split
    /// one. Importing them gives the same fingerprint.
    Export {
        /// Image (alias or fingerprint prefix).
        image: String,
        /// Directory to write into (default: the current one).
        target: Option<std::path::PathBuf>,
    },
    /// Manage aliases.
    #[command(subcommand)]
    Alias(AliasCmd),
}

#[derive(Debug, clap::Subcommand)]
enum AliasCmd {
    /// Name an image.
    Create {
        /// New alias.
        alias: String,
        /// Image (alias or fingerprint prefix).
        image: String,
    },
    /// Remove an alias (the image stays).
    Delete {
        /// Alias.
        alias: String,
    },
    /// List aliases.
    List,
    /// Rename an alias.
    Rename {
        /// Alias.
        alias: String,
        /// New name.
        new: String,
    },
}

/// One image as `image list` shows it.
#[derive(Debug, Clone, Serialize)]
struct Row {
    aliases: Vec<String>,
    fingerprint: String,
    description: String,
    architecture: String,
    size: u64,
    imported_at: u64,
}

/// The store. Its directories are made by `import` only: reading the store of a user who has
/// none (`image list` as a new user) makes nothing. Where the data directory exists it is
/// checked and made private again as every writing command does ([`Paths::ensure`]: an
/// older lxr's set-id files are defused on the first command that looks at the store).
fn store(paths: &Paths) -> Result<Store> {
    if paths.data.exists() {
        paths.ensure()?;
    }
    Ok(Store::new(paths.data.join("images")))
}

/// `file` is not an image: say what is wrong with it (an empty file; not a tarball or a
/// squashfs; no `metadata.yaml`), not "container setup failed" — the unpacking runs in a
/// helper namespace, whose failures read as a container's.
fn not_an_image(file: &std::path::Path, e: Error) -> Error {
    match e {
        Error::Setup(why) => Error::Usage(format!("cannot import {}: {why}", file.display())),
        e => e,
    }
}

fn stored(store: &Store, name: &str) -> Result<String> {
    match store.resolve(name)? {
        Source::Stored(fp) => Ok(fp),
        Source::Builtin(b) => Err(Error::Usage(format!(
            "{b} is built in: it is made when a container is launched and cannot be changed"
        ))),
    }
}

/// Run.
pub fn run(paths: &Paths, a: Args) -> Result<i32> {
    let store = store(paths)?;
    match a.cmd {
        Cmd::Import {
            file,
            rootfs,
            alias,
            max_size,
        } => {
            let max = match max_size.or_else(|| std::env::var("LXR_IMAGE_MAX_SIZE").ok()) {
                Some(v) => crate::limits::parse_bytes(&v)
                    .map_err(|e| Error::Usage(format!("--max-size: {e}")))?,
                None => import::DEFAULT_MAX_SIZE,
            };
            for f in std::iter::once(&file).chain(rootfs.as_ref()) {
                if std::fs::metadata(f).is_ok_and(|m| m.is_file() && m.len() == 0) {
                    return Err(Error::Usage(format!(
                        "cannot import {}: the file is empty, not an image",
                        f.display()
                    )));
                }
            }
            let maps = IdMaps::for_current_user()?;
            paths.ensure()?;
            match import::import(&store, &maps, &file, rootfs.as_deref(), &alias, max)
                .map_err(|e| not_an_image(&file, e))?
            {
                Imported::New(fp) => super::say!("Image imported with fingerprint: {fp}"),
                Imported::Existing(fp) => super::say!("Image already present: {fp}"),
            }
        }
        Cmd::List { format } => list(&store, &format.format)?,
        Cmd::Delete { images } => {
            let fps = images
                .iter()
                .map(|i| stored(&store, i))
                .collect::<Result<Vec<_>>>()?;
            let maps = IdMaps::for_current_user()?;
            for fp in fps {
                import::delete(&store, &maps, &fp)?;
            }
        }
        Cmd::Export { image, target } => {
            let fp = stored(&store, &image)?;
            let dir = target.unwrap_or_else(|| ".".into());
            if !dir.is_dir() {
                return Err(Error::Usage(format!(
                    "{} is not a directory: give the directory to write the image into",
                    dir.display()
                )));
            }
            let record = store.record(&fp)?;
            for p in crate::image::original::export(&store, &fp, &record.files, &dir)? {
                println!("{}", p.display());
            }
        }
        Cmd::Alias(AliasCmd::Create { alias, image }) => {
            check_alias(&alias)?;
            let fp = stored(&store, &image)?;
            let mut table = store.aliases()?;
            if table.contains_key(&alias) {
                return Err(Error::Usage(format!(
                    "alias {alias} exists: `lxr image alias delete {alias}` first"
                )));
            }
            table.insert(alias, fp);
            store.save_aliases(&table)?;
        }
        Cmd::Alias(AliasCmd::Delete { alias }) => {
            let mut table = store.aliases()?;
            if table.remove(&alias).is_none() {
                return Err(Error::NotFound(format!("no alias {alias}")));
            }
            store.save_aliases(&table)?;
        }
        Cmd::Alias(AliasCmd::Rename { alias, new }) => {
            check_alias(&new)?;
            let _lock = store.lock()?;
            let mut table = store.aliases()?;
            if table.contains_key(&new) {
                return Err(Error::Usage(format!(
                    "alias {new} exists: `lxr image alias delete {new}` first"
                )));
            }
            let fp = table
                .remove(&alias)
                .ok_or_else(|| Error::NotFound(format!("no alias {alias}")))?;
            table.insert(new, fp);
            store.save_aliases(&table)?;
        }
        Cmd::Alias(AliasCmd::List) => {
            for (alias, fp) in store.aliases()? {
                println!("{alias:<24} {}", &fp[..12.min(fp.len())]);
            }
        }
    }
    Ok(0)
}

fn list(store: &Store, format: &str) -> Result<()> {
    let aliases = store.aliases()?;
    let rows: Vec<Row> = store
        .list()?
        .into_iter()
        .map(|r| Row {
            aliases: aliases
                .iter()
                .filter(|(_, fp)| **fp == r.fingerprint)
                .map(|(a, _)| a.clone())
                .collect(),
            fingerprint: r.fingerprint,
            description: r.description,
            architecture: r.architecture,
            size: r.size,
            imported_at: r.imported_at,
        })
        .collect();
    if super::format::print_data(format, &rows)? {
        return Ok(());
    }
    match format {
        "csv" => print!(
            "{}",
            super::format::csv(
                [
                    "aliases",
                    "fingerprint",
                    "description",
                    "architecture",
                    "size",
                    "imported_at"
                ],
                rows.iter().map(|r| [
                    r.aliases.join(" "),
                    r.fingerprint.clone(),
                    r.description.clone(),
                    r.architecture.clone(),
                    r.size.to_string(),
                    r.imported_at.to_string(),
                ]),
            )
        ),
        _ => {
            // Columns as wide as their widest cell: an alias may have 128 characters.
            let dash = || "-".to_string();
            let builtin = BUILTIN
                .iter()
                .map(|b| vec![b.to_string(), dash(), dash(), dash(), "built in".into()]);
            let stored = rows.iter().map(|r| {
                vec![
                    if r.aliases.is_empty() {
                        dash()
                    } else {
                        r.aliases.join(",")
                    },
                    r.fingerprint[..12.min(r.fingerprint.len())].to_string(),
                    r.architecture.clone(),
                    format!("{:.1}MiB", r.size as f64 / 1048576.0),
                    r.description.clone(),
                ]
            });
            print!(
                "{}",
                super::table::render(
                    &["ALIAS", "FINGERPRINT", "ARCH", "SIZE", "DESCRIPTION"],
                    builtin.chain(stored)
                )
            );
        }
    }
    Ok(())
}
