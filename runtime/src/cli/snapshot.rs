//! `lxr snapshot create|list|delete|restore|rename` ([`Containers::snapshot_create`] & co.),
//! with Incus's names: `create NAME [SNAP]`, `list NAME [--format]`, `delete NAME SNAP`,
//! `restore NAME SNAP`, `rename NAME SNAP NEW`.

use serde::Serialize;

use super::format::FormatArg;
use crate::error::Result;
use crate::lifecycle::Containers;
use crate::storage::usage::human;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Take a snapshot (a running container is frozen meanwhile); default name snapN.
    Create {
        /// Container name.
        name: String,
        /// Snapshot name.
        snap: Option<String>,
        /// Replace an existing snapshot of that name.
        #[arg(long)]
        reuse: bool,
    },
    /// List a container's snapshots: name, when taken, size.
    #[command(alias = "ls")]
    List {
        /// Container name.
        name: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Delete a snapshot.
    #[command(alias = "rm")]
    Delete {
        /// Container name.
        name: String,
        /// Snapshot name.
        snap: String,
    },
    /// Restore a snapshot (a running container is stopped, restored and started).
    Restore {
        /// Container name.
        name: String,
        /// Snapshot name.
        snap: String,
    },
    /// Rename a snapshot.
    Rename {
        /// Container name.
        name: String,
        /// Snapshot name.
        snap: String,
        /// New snapshot name.
        new: String,
    },
}

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    taken_at: u64,
    size: Option<u64>,
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a unix time (civil from days, no time crate).
fn utc(t: u64) -> String {
    let (days, secs) = ((t / 86400) as i64, t % 86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    match a.cmd {
        Cmd::Create { name, snap, reuse } => {
            c.snapshot_create(&name, snap.as_deref(), reuse)?;
        }
        Cmd::List { name, format } => {
            let rows: Vec<Row> = c
                .snapshot_list(&name)?
                .into_iter()
                .map(|s| Row {
                    name: s.name,
                    taken_at: s.taken_at,
                    size: s.size,
                })
                .collect();
            if super::format::print_data(&format.format, &rows)? {
                return Ok(0);
            }
            match format.format.as_str() {
                "csv" => print!(
                    "{}",
                    super::format::csv(
                        ["name", "taken_at", "size"],
                        rows.iter().map(|r| [
                            r.name.clone(),
                            utc(r.taken_at),
                            r.size.map(|s| s.to_string()).unwrap_or_default()
                        ])
                    )
                ),
                _ => {
                    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
                    println!("{:w$}  {:23}  SIZE", "NAME", "TAKEN AT");
                    for r in &rows {
                        println!(
                            "{:w$}  {:23}  {}",
                            r.name,
                            utc(r.taken_at),
                            r.size.map(human).unwrap_or_else(|| "-".into())
                        );
                    }
                }
            }
        }
        Cmd::Delete { name, snap } => c.snapshot_delete(&name, &snap)?,
        Cmd::Restore { name, snap } => c.snapshot_restore(&name, &snap)?,
        Cmd::Rename { name, snap, new } => c.snapshot_rename(&name, &snap, &new)?,
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc(1_798_761_599), "2026-12-31 23:59:59 UTC");
    }
}
