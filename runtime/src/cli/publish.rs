//! `lxr publish NAME[/SNAP] [--alias A]… [--force] [--reuse] [--compression C] [KEY=VALUE…]`
//! ([`Containers::publish`]): make an image from a stopped container, as `incus publish`.

use crate::error::{Error, Result};
use crate::image::import::{Imported, DEFAULT_MAX_SIZE};
use crate::image::pack::Compression;
use crate::lifecycle::{Containers, Publish};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container (or CONTAINER/SNAPSHOT).
    source: String,
    /// Properties of the new image, e.g. description="my web server".
    #[arg(value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// Alias to give the new image (repeatable).
    #[arg(long)]
    alias: Vec<String>,
    /// Stop a running container first, and start it again after.
    #[arg(short, long)]
    force: bool,
    /// If an alias names another image already, move it to the new one.
    #[arg(long)]
    reuse: bool,
    /// Compression of the image tarball.
    #[arg(long, value_enum, default_value_t = Compression::Gzip)]
    compression: Compression,
    /// Refuse an image that unpacks to more than this (as `image import --max-size`).
    #[arg(long, value_name = "SIZE")]
    max_size: Option<String>,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let (name, snap) = match a.source.split_once('/') {
        Some((n, s)) => (n, Some(s)),
        None => (a.source.as_str(), None),
    };
    let max_size = match a
        .max_size
        .or_else(|| std::env::var("LXR_IMAGE_MAX_SIZE").ok())
    {
        Some(v) => {
            crate::limits::parse_bytes(&v).map_err(|e| Error::Usage(format!("--max-size: {e}")))?
        }
        None => DEFAULT_MAX_SIZE,
    };
    let how = Publish {
        aliases: a.alias,
        force: a.force,
        reuse: a.reuse,
        compression: a.compression,
        properties: a.properties,
        max_size,
    };
    match c.publish(name, snap, &how)? {
        Imported::New(fp) => super::say!("Instance published with fingerprint: {fp}"),
        Imported::Existing(fp) => super::say!("Instance published as the existing image {fp}"),
    }
    Ok(0)
}
