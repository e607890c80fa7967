//! `lxr config show|get|set|unset NAME [KEY [VALUE]]`; limits are applied at once to a running
//! container.

use crate::container::{check_name, Config, State};
use crate::error::{Error, Result};
use crate::paths::Paths;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    op: Op,
}

#[derive(Debug, clap::Subcommand)]
enum Op {
    /// Print every key.
    Show { name: String },
    /// Print one key.
    Get { name: String, key: String },
    /// Set a key (applied live to a running container).
    Set {
        name: String,
        key: String,
        value: String,
    },
    /// Remove a key (the limit is lifted live).
    Unset { name: String, key: String },
}

/// A file and the value that lifts a limit: (v1 file, value), (v2 file, value).
type Lift = ((&'static str, &'static str), (&'static str, &'static str));

/// The controller and the values that lift each limit.
fn lifted(key: &str) -> Option<(&'static str, Lift)> {
    match key {
        "limits.memory" => Some((
            "memory",
            (("memory.limit_in_bytes", "-1"), ("memory.max", "max")),
        )),
        "limits.processes" => Some(("pids", (("pids.max", "max"), ("pids.max", "max")))),
        "limits.cpu.allowance" => Some(("cpu", (("cpu.cfs_quota_us", "-1"), ("cpu.max", "max")))),
        _ => None,
    }
}

/// Run.
pub fn run(paths: &Paths, a: Args) -> Result<i32> {
    let name = match &a.op {
        Op::Show { name }
        | Op::Get { name, .. }
        | Op::Set { name, .. }
        | Op::Unset { name, .. } => name.clone(),
    };
    let name = name.as_str();
    check_name(name)?;
    let file = paths.container(name).join("config.yaml");
    if !file.exists() {
        return Err(Error::NotFound(format!("no container {name}")));
    }
    let mut cfg = Config::load(&file)?;
    let running = State::load(&paths.state(name))?;
    match a.op {
        Op::Show { .. } => {
            println!("image: {}", cfg.image);
            for (k, v) in &cfg.keys {
                println!("{k}: {v}");
            }
        }
        Op::Get { key, .. } => {
            let v = cfg
                .keys
                .get(&key)
                .ok_or_else(|| Error::NotFound(format!("{name} has no {key}")))?;
            println!("{v}");
        }
        Op::Set { key, value, .. } => {
            crate::container::check_key(&key, &value)?;
            if key.starts_with("limits.") {
                if let Some(s) = &running {
                    let one = [(key.clone(), value.clone())].into_iter().collect();
                    crate::cgroup::apply(&s.cgroup, &one)?;
                }
            }
            cfg.keys.insert(key, value);
            cfg.save(&file)?;
        }
        Op::Unset { key, .. } => {
            if cfg.keys.remove(&key).is_none() {
                return Err(Error::NotFound(format!("{name} has no {key}")));
            }
            if let (Some(s), Some((c, (v1, v2)))) = (&running, lifted(&key)) {
                crate::cgroup::set(&s.cgroup, c, v1, v2)?;
            }
            cfg.save(&file)?;
        }
    }
    Ok(0)
}
