//! `lxr launch IMAGE NAME [-c key=value]…`: create, then start.

use crate::container::{check_name, Config};
use crate::error::{Error, Result};
use crate::idmap::IdMaps;
use crate::image;
use crate::paths::Paths;
use crate::userns::run_as_root;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image (built-in: busybox).
    image: String,
    /// Container name.
    name: String,
    /// Settings, e.g. -c limits.memory=256MiB.
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
}

/// Create the container's directory and rootfs.
pub fn create(paths: &Paths, image_name: &str, name: &str, keys: &[String]) -> Result<()> {
    check_name(name)?;
    if !image::BUILTIN.contains(&image_name) {
        return Err(Error::NotFound(format!(
            "no image {image_name:?} (built-in: {})",
            image::BUILTIN.join(", ")
        )));
    }
    let mut cfg = Config {
        image: image_name.to_string(),
        ..Default::default()
    };
    for kv in keys {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("-c {kv}: expected KEY=VALUE")))?;
        cfg.keys.insert(k.to_string(), v.to_string());
    }
    paths.ensure()?;
    let dir = paths.container(name);
    if dir.exists() {
        return Err(Error::Usage(format!(
            "container {name} already exists (lxr delete {name} first, or pick another name)"
        )));
    }
    let maps = IdMaps::for_current_user()?;
    std::fs::create_dir(&dir).map_err(|e| Error::Os {
        what: format!("create {}", dir.display()),
        source: e,
    })?;
    let result = (|| {
        cfg.save(&dir.join("config.yaml"))?;
        let rootfs = dir.join("rootfs");
        let bb = std::path::Path::new(image::busybox::HOST_BUSYBOX);
        let code = run_as_root(&maps, || image::busybox::build(&rootfs, bb))?;
        if code != 0 {
            return Err(Error::Setup(format!("building the rootfs failed ({code})")));
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = crate::cli::delete::remove_tree(paths, name, &maps);
    }
    result
}

/// Run.
pub fn run(paths: &Paths, a: Args) -> Result<i32> {
    create(paths, &a.image, &a.name, &a.config)?;
    let s = match crate::cli::start::start(paths, &a.name) {
        Ok(s) => s,
        Err(e) => {
            return Err(Error::Setup(format!(
                "{e} (the container was created; fix the problem and run `lxr start {}`, or `lxr delete {}`)",
                a.name, a.name
            )))
        }
    };
    println!("Launched {}", a.name);
    if let Some(why) = &s.cgroup.unconfined {
        eprintln!("lxr: warning: {} runs unconfined: {why}", a.name);
    }
    Ok(0)
}
