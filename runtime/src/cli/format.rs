//! `--format` of the listing verbs (`list`, `image list`, `snapshot list`): the argument of
//! `image list` and `snapshot list`, and the JSON, YAML and CSV renderings every listing
//! shares (each verb draws its own table).

use serde::Serialize;

use crate::error::{Error, Result};

/// `--format`/`-f`, as `image list` and `snapshot list` take it (`list` adds `compact`).
#[derive(Debug, clap::Args)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, short = 'f', default_value = "table", value_parser = ["table", "json", "yaml", "csv"])]
    pub format: String,
}

/// Print `rows` as JSON (one line) or YAML when `format` names one of them; false for the
/// formats the verb renders itself (its table, CSV).
pub fn print_data(format: &str, rows: &impl Serialize) -> Result<bool> {
    let text = match format {
        "json" => serde_json::to_string(rows).map_err(|e| Error::Host(e.to_string()))? + "\n",
        "yaml" => serde_yaml_ng::to_string(rows).map_err(|e| Error::Host(e.to_string()))?,
        _ => return Ok(false),
    };
    print!("{text}");
    Ok(true)
}

/// `header` and `rows` as CSV for `--format csv` (RFC 4180, by the `csv` crate: a field with
/// a comma, a quote or a line break is quoted, its quotes doubled — `limits.cpu=0,1` stays one
/// field).
pub fn csv<H, R>(header: H, rows: impl IntoIterator<Item = R>) -> String
where
    H: IntoIterator,
    H::Item: AsRef<[u8]>,
    R: IntoIterator,
    R::Item: AsRef<[u8]>,
{
    let mut w = ::csv::Writer::from_writer(Vec::new());
    // Writing into a Vec cannot fail; every record has the header's length (the callers'
    // rows are built column by column from the header's list).
    let _ = w.write_record(header);
    for r in rows {
        let _ = w.write_record(r);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}
