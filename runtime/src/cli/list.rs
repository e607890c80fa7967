//! `lxr list [--format table|json|yaml|csv]` ([`Containers::list`]): name, state, pid, memory
//! use, limits.

use serde::Serialize;

use crate::error::Result;
use crate::lifecycle::Containers;

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
pub fn rows(c: &Containers) -> Result<Vec<Row>> {
    Ok(c.list()?
        .into_iter()
        .map(|s| Row {
            state: if s.running.is_some() {
                "RUNNING"
            } else {
                "STOPPED"
            }
            .into(),
            pid: s.running.as_ref().map(|r| r.init_pid),
            memory: s.usage.memory,
            limits: s
                .config
                .keys
                .iter()
                .filter(|(k, _)| k.starts_with("limits."))
                .map(|(k, v)| format!("{}={v}", k.trim_start_matches("limits.")))
                .collect(),
            image: s.config.image,
            name: s.name,
        })
        .collect())
}

fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1}MiB", b as f64 / 1048576.0))
        .unwrap_or_else(|| "-".into())
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let rows = rows(c)?;
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
