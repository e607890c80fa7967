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

/// `--format csv`: one line per container, the limits space-separated in one field.
fn csv(rows: &[Row]) -> String {
    super::csv(
        ["name", "state", "pid", "memory", "image", "limits"],
        rows.iter().map(|r| {
            [
                r.name.clone(),
                r.state.clone(),
                r.pid.map(|p| p.to_string()).unwrap_or_default(),
                r.memory.map(|m| m.to_string()).unwrap_or_default(),
                r.image.clone(),
                r.limits.join(" "),
            ]
        }),
    )
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let rows = rows(c)?;
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&rows).unwrap_or_default()),
        "yaml" => print!("{}", serde_yaml_ng::to_string(&rows).unwrap_or_default()),
        "csv" => print!("{}", csv(&rows)),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A limit with a comma (`limits.cpu: "0,1"`) stays in its column: the hand-written
    /// output printed `cpu=0,1 memory=256MiB` bare, seven fields under six headers.
    #[test]
    fn csv_quotes_fields_with_commas() {
        let rows = vec![
            Row {
                name: "c1".into(),
                state: "RUNNING".into(),
                pid: Some(42),
                memory: Some(1048576),
                image: "busybox".into(),
                limits: vec!["cpu=0,1".into(), "memory=256MiB".into()],
            },
            Row {
                name: "c2".into(),
                state: "STOPPED".into(),
                pid: None,
                memory: None,
                image: "deb \"12\"".into(),
                limits: vec![],
            },
        ];
        let out = csv(&rows);
        assert_eq!(
            out,
            "name,state,pid,memory,image,limits\n\
             c1,RUNNING,42,1048576,busybox,\"cpu=0,1 memory=256MiB\"\n\
             c2,STOPPED,,,\"deb \"\"12\"\"\",\n"
        );
        let mut r = ::csv::Reader::from_reader(out.as_bytes());
        let recs: Vec<::csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert!(recs.iter().all(|r| r.len() == 6));
        assert_eq!(&recs[0][5], "cpu=0,1 memory=256MiB");
        assert_eq!(&recs[1][4], "deb \"12\"");
    }
}
