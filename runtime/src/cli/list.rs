//! `lxr list [--format table|json|yaml|csv]`: name, state, pid, memory use, limits.

use serde::Serialize;

use crate::container::{Config, State};
use crate::error::{Context, Result};
use crate::paths::Paths;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "yaml", "csv"])]
    format: String,
}

/// One container as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Name.
    pub name: String,
    /// RUNNING or STOPPED.
    pub state: String,
    /// Host pid of its init.
    pub pid: Option<u32>,
    /// Memory in use (bytes), when confined and running.
    pub memory: Option<u64>,
    /// Image.
    pub image: String,
    /// `limits.*` settings.
    pub limits: Vec<String>,
}

/// Every container, sorted by name.
pub fn rows(paths: &Paths) -> Result<Vec<Row>> {
    let dir = paths.data.join("containers");
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).ctx(|| format!("read {}", dir.display())),
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let cfg = Config::load(&e.path().join("config.yaml")).unwrap_or_default();
        let st = State::load(&paths.state(&name)).ok().flatten();
        let memory = st.as_ref().and_then(|s| {
            crate::cgroup::get(
                &s.cgroup,
                "memory",
                "memory.usage_in_bytes",
                "memory.current",
            )
            .and_then(|v| v.trim().parse().ok())
        });
        out.push(Row {
            name,
            state: if st.is_some() { "RUNNING" } else { "STOPPED" }.into(),
            pid: st.map(|s| s.init_pid),
            memory,
            image: cfg.image,
            limits: cfg
                .keys
                .iter()
                .filter(|(k, _)| k.starts_with("limits."))
                .map(|(k, v)| format!("{}={v}", k.trim_start_matches("limits.")))
                .collect(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1}MiB", b as f64 / 1048576.0))
        .unwrap_or_else(|| "-".into())
}

/// Run.
pub fn run(paths: &Paths, a: Args) -> Result<i32> {
    let rows = rows(paths)?;
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&rows).unwrap_or_default()),
        "yaml" => print!("{}", serde_yaml_ng::to_string(&rows).unwrap_or_default()),
        "csv" => {
            println!("name,state,pid,memory,image,limits");
            for r in &rows {
                let pid = r.pid.map(|p| p.to_string()).unwrap_or_default();
                let mem = r.memory.map(|m| m.to_string()).unwrap_or_default();
                println!(
                    "{},{},{pid},{mem},{},{}",
                    r.name,
                    r.state,
                    r.image,
                    r.limits.join(" ")
                );
            }
        }
        _ => {
            println!(
                "{:<20} {:<8} {:>8} {:>10} {:<10} LIMITS",
                "NAME", "STATE", "PID", "MEMORY", "IMAGE"
            );
            for r in &rows {
                let pid = r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{:<20} {:<8} {pid:>8} {:>10} {:<10} {}",
                    r.name,
                    r.state,
                    mib(r.memory),
                    r.image,
                    r.limits.join(" ")
                );
            }
        }
    }
    Ok(0)
}
