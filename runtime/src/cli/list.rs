//! `lxr list [--format table|json|yaml|csv]` ([`Containers::list`]): name, state, pid, IPv4 and
//! IPv6 addresses, memory use, limits.

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
    /// IPv4 addresses, `10.0.2.100 (eth0)` (as LXD's list).
    pub ipv4: Vec<String>,
    /// Global IPv6 addresses, `fd00::100 (eth0)`.
    pub ipv6: Vec<String>,
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
            ipv4: s
                .ifaces
                .iter()
                .flat_map(|i| i.v4.iter().map(move |a| format!("{a} ({})", i.name)))
                .collect(),
            ipv6: s
                .ifaces
                .iter()
                .flat_map(|i| i.v6.iter().map(move |a| format!("{a} ({})", i.name)))
                .collect(),
            memory: s.usage.memory,
            limits: s
                .config
                .keys
                .iter()
                .filter(|(k, _)| k.starts_with("limits."))
                .map(|(k, v)| format!("{}={v}", k.trim_start_matches("limits.")))
                .collect(),
            image: c.image_label(&s.config.image),
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
        [
            "name", "state", "pid", "ipv4", "ipv6", "memory", "image", "limits",
        ],
        rows.iter().map(|r| {
            [
                r.name.clone(),
                r.state.clone(),
                r.pid.map(|p| p.to_string()).unwrap_or_default(),
                r.ipv4.join(" "),
                r.ipv6.join(" "),
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
                "{:<20} {:<8} {:>8} {:<20} {:<28} {:>10} {:<10} LIMITS",
                "NAME", "STATE", "PID", "IPV4", "IPV6", "MEMORY", "IMAGE"
            );
            let addrs = |a: &[String]| {
                if a.is_empty() {
                    "-".to_string()
                } else {
                    a.join(",")
                }
            };
            for r in &rows {
                let pid = r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{:<20} {:<8} {pid:>8} {:<20} {:<28} {:>10} {:<10} {}",
                    r.name,
                    r.state,
                    addrs(&r.ipv4),
                    addrs(&r.ipv6),
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
                ipv4: vec!["10.0.2.100 (eth0)".into()],
                ipv6: vec![],
                memory: Some(1048576),
                image: "busybox".into(),
                limits: vec!["cpu=0,1".into(), "memory=256MiB".into()],
            },
            Row {
                name: "c2".into(),
                state: "STOPPED".into(),
                pid: None,
                ipv4: vec![],
                ipv6: vec![],
                memory: None,
                image: "deb \"12\"".into(),
                limits: vec![],
            },
        ];
        let out = csv(&rows);
        assert_eq!(
            out,
            "name,state,pid,ipv4,ipv6,memory,image,limits\n\
             c1,RUNNING,42,10.0.2.100 (eth0),,1048576,busybox,\"cpu=0,1 memory=256MiB\"\n\
             c2,STOPPED,,,,,\"deb \"\"12\"\"\",\n"
        );
        let mut r = ::csv::Reader::from_reader(out.as_bytes());
        let recs: Vec<::csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert!(recs.iter().all(|r| r.len() == 8));
        assert_eq!(&recs[0][7], "cpu=0,1 memory=256MiB");
        assert_eq!(&recs[1][6], "deb \"12\"");
    }
}
