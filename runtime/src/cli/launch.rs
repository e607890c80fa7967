//! `lxr launch IMAGE NAME [-c key=value]…`: create, then start.

use crate::container::{check_name, Config};
use crate::error::{Error, Result};
use crate::idmap::IdMaps;
use crate::image;
use crate::lock::Lock;
use crate::paths::Paths;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image: built-in `busybox`, an alias or a fingerprint prefix (`lxr image list`).
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
    let store = image::Store::new(paths.data.join("images"));
    let source = store.resolve(image_name)?;
    let mut cfg = Config {
        image: image_name.to_string(),
        ..Default::default()
    };
    for kv in keys {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("-c {kv}: expected KEY=VALUE")))?;
        crate::container::check_key(k, v)?;
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
        image::create_rootfs(&store, &source, &maps, &dir.join("rootfs"), name)
    })();
    if result.is_err() {
        let _ = crate::cli::delete::remove_tree(paths, name, &maps);
    }
    result
}

/// Run.
pub fn run(paths: &Paths, a: Args) -> Result<i32> {
    check_name(&a.name)?;
    let lock = Lock::container(paths, &a.name)?;
    create(paths, &a.image, &a.name, &a.config)?;
    let s = match crate::cli::start::start(paths, &a.name, &lock) {
        Ok(s) => s,
        Err(e) => {
            return Err(Error::from_child(&format!(
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
