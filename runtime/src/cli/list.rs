//! `lxr list [FILTER…] [-c COLUMNS] [-f table|compact|csv|json|yaml]` ([`Containers::list`]),
//! as Incus's: columns chosen by letter, filters on the name, the state and the config.
//!
//! Columns (Incus's letters): `n` name, `s` state (RUNNING, FROZEN, STOPPED), `4` IPv4, `6`
//! IPv6, `t` type, `S` snapshots, `p` pid, `m` memory use; lxr's own: `i` image, `x` limits.
//! The default, `nsp46tSmix`, is what lxr always showed (name, state, pid, addresses, memory,
//! image, limits) plus Incus's type and snapshots; the csv column order stays compatible with
//! scripts that read name, state and pid first.
//!
//! Filters (all must match): a bare word is the name as an anchored regex or a name prefix
//! (`lxr list c` shows `c1` and `c2`); `name=REGEX`, `status=running|frozen|stopped`,
//! `type=container`, `ipv4=ADDR[/LEN]`, `ipv6=ADDR[/LEN]`; any other `KEY=VALUE` compares the
//! container's config (`limits.cpu=1`, `user.note=x`).

use std::net::IpAddr;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::lifecycle::{Containers, Status};

/// The columns shown without `-c`.
const DEFAULT_COLUMNS: &str = "nsp46tSmix";

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Filters, all of which must match: a name prefix or regex (`c`, `web-.*`), `name=REGEX`,
    /// `status=running|frozen|stopped`, `type=container`, `ipv4=10.0.2.0/24`, `ipv6=ADDR`, or
    /// a config `KEY=VALUE` (`limits.cpu=1`).
    #[arg(value_name = "FILTER")]
    filters: Vec<String>,
    /// Columns, by letter: n name, s state, 4 IPv4, 6 IPv6, t type, S snapshots, p pid,
    /// m memory (Incus's letters); i image, x limits (lxr's).
    #[arg(short = 'c', long = "columns", default_value = DEFAULT_COLUMNS)]
    columns: String,
    /// Output format (json and yaml show every field whatever the columns).
    #[arg(short = 'f', long, default_value = "table",
          value_parser = ["table", "compact", "csv", "json", "yaml"])]
    format: String,
}

/// One container as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Name.
    pub name: String,
    /// RUNNING, FROZEN or STOPPED.
    pub state: String,
    /// Host pid of its init.
    pub pid: Option<u32>,
    /// IPv4 addresses, `10.0.2.100 (eth0)` (as LXD's list).
    pub ipv4: Vec<String>,
    /// Global IPv6 addresses, `fd00::100 (eth0)`.
    pub ipv6: Vec<String>,
    /// CONTAINER (lxr has no virtual machines).
    #[serde(rename = "type")]
    pub kind: String,
    /// How many snapshots it has.
    pub snapshots: u64,
    /// Memory in use (bytes), when confined and running.
    pub memory: Option<u64>,
    /// Image.
    pub image: String,
    /// `limits.*` settings.
    pub limits: Vec<String>,
}

/// A column of the table and the csv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Name,
    State,
    Ipv4,
    Ipv6,
    Type,
    Snapshots,
    Pid,
    Memory,
    Image,
    Limits,
}

impl Column {
    fn of(letter: char) -> Option<Column> {
        Some(match letter {
            'n' => Column::Name,
            's' => Column::State,
            '4' => Column::Ipv4,
            '6' => Column::Ipv6,
            't' => Column::Type,
            'S' => Column::Snapshots,
            'p' => Column::Pid,
            'm' => Column::Memory,
            'i' => Column::Image,
            'x' => Column::Limits,
            _ => return None,
        })
    }

    fn header(self) -> &'static str {
        match self {
            Column::Name => "NAME",
            Column::State => "STATE",
            Column::Ipv4 => "IPV4",
            Column::Ipv6 => "IPV6",
            Column::Type => "TYPE",
            Column::Snapshots => "SNAPSHOTS",
            Column::Pid => "PID",
            Column::Memory => "MEMORY",
            Column::Image => "IMAGE",
            Column::Limits => "LIMITS",
        }
    }

    /// The cell of `r`: for the table (`-` when there is nothing) or for csv (empty, and
    /// memory in bytes).
    fn cell(self, r: &Row, csv: bool) -> String {
        let dash = |s: String| {
            if s.is_empty() && !csv {
                "-".to_string()
            } else {
                s
            }
        };
        match self {
            Column::Name => r.name.clone(),
            Column::State => r.state.clone(),
            Column::Ipv4 => dash(r.ipv4.join(if csv { " " } else { "," })),
            Column::Ipv6 => dash(r.ipv6.join(if csv { " " } else { "," })),
            Column::Type => r.kind.clone(),
            Column::Snapshots => r.snapshots.to_string(),
            Column::Pid => dash(r.pid.map(|p| p.to_string()).unwrap_or_default()),
            Column::Memory => match (r.memory, csv) {
                (Some(m), true) => m.to_string(),
                (Some(m), false) => format!("{:.1}MiB", m as f64 / 1048576.0),
                (None, _) => dash(String::new()),
            },
            Column::Image => r.image.clone(),
            Column::Limits => dash(r.limits.join(" ")),
        }
    }
}

/// `-c` parsed; an unknown letter is refused with the known ones.
fn columns(spec: &str) -> Result<Vec<Column>> {
    let cols = spec
        .chars()
        .map(|c| {
            Column::of(c).ok_or_else(|| {
                Error::Usage(format!(
                    "-c {spec}: no column '{c}' (n name, s state, 4 IPv4, 6 IPv6, t type, \
                     S snapshots, p pid, m memory, i image, x limits)"
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if cols.is_empty() {
        return Err(Error::Usage("-c: no columns given".into()));
    }
    Ok(cols)
}

/// One filter argument.
#[derive(Debug)]
enum Filter {
    /// A bare word: the anchored regex, or a name prefix.
    Word(String, Option<regex_lite::Regex>),
    /// `name=REGEX`.
    Name(regex_lite::Regex),
    /// `status=`.
    Status(String),
    /// `type=`.
    Type(String),
    /// `ipv4=` / `ipv6=`: an address, or a network with a prefix length.
    Addr(IpAddr, u8),
    /// A config key and the value it must have.
    Key(String, String),
}

/// Anchored as Incus anchors it: unless the pattern has `^` or `$` itself.
fn anchored(p: &str) -> std::result::Result<regex_lite::Regex, regex_lite::Error> {
    if p.contains('^') || p.contains('$') {
        regex_lite::Regex::new(p)
    } else {
        regex_lite::Regex::new(&format!("^(?:{p})$"))
    }
}

impl Filter {
    fn parse(f: &str) -> Result<Filter> {
        let Some((k, v)) = f.split_once('=') else {
            return Ok(Filter::Word(f.to_string(), anchored(f).ok()));
        };
        Ok(match k {
            "name" => {
                Filter::Name(anchored(v).map_err(|e| Error::Usage(format!("filter {f}: {e}")))?)
            }
            "status" | "state" => Filter::Status(v.to_ascii_uppercase()),
            "type" => Filter::Type(v.to_ascii_uppercase()),
            "ipv4" | "ipv6" => {
                let (a, len) = v.split_once('/').unwrap_or((v, ""));
                let addr: IpAddr = a
                    .parse()
                    .map_err(|_| Error::Usage(format!("filter {f}: not an address")))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let len = if len.is_empty() {
                    max
                } else {
                    len.parse::<u8>()
                        .ok()
                        .filter(|l| *l <= max)
                        .ok_or_else(|| Error::Usage(format!("filter {f}: bad prefix length")))?
                };
                if addr.is_ipv4() != (k == "ipv4") {
                    return Err(Error::Usage(format!("filter {f}: not an {k} address")));
                }
                Filter::Addr(addr, len)
            }
            _ => Filter::Key(k.to_string(), v.to_string()),
        })
    }

    fn matches(&self, r: &Row, s: &Status) -> bool {
        match self {
            Filter::Word(w, re) => {
                r.name.starts_with(w.as_str()) || re.as_ref().is_some_and(|re| re.is_match(&r.name))
            }
            Filter::Name(re) => re.is_match(&r.name),
            Filter::Status(st) => r.state == *st,
            Filter::Type(t) => r.kind == *t,
            Filter::Addr(net, len) => s.ifaces.iter().any(|i| {
                i.v4.iter()
                    .map(|a| IpAddr::V4(*a))
                    .chain(i.v6.iter().map(|a| IpAddr::V6(*a)))
                    .any(|a| within(a, *net, *len))
            }),
            Filter::Key(k, v) => s.config.keys.get(k) == Some(v),
        }
    }
}

/// Whether `a` is in `net`/`len`.
fn within(a: IpAddr, net: IpAddr, len: u8) -> bool {
    let bits = |x: IpAddr| match x {
        IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, true),
        IpAddr::V6(v) => (u128::from(v), false),
    };
    let ((a, a4), (n, n4)) = (bits(a), bits(net));
    // IPv4 sits in the top 32 bits, so a prefix length counts from the top for both.
    let len = u32::from(len);
    if a4 != n4 {
        return false;
    }
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    a & mask == n & mask
}

/// How many snapshots `name` has: the directories under `containers/<name>/snapshots/`.
fn snapshots(c: &Containers, name: &str) -> u64 {
    std::fs::read_dir(c.paths().container(name).join("snapshots"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .count() as u64
        })
        .unwrap_or(0)
}

fn row(c: &Containers, s: &Status) -> Row {
    Row {
        name: s.name.clone(),
        state: match (&s.running, s.usage.frozen) {
            (None, _) => "STOPPED",
            (Some(_), Some(true)) => "FROZEN",
            (Some(_), _) => "RUNNING",
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
        kind: if s.config.ephemeral {
            "CONTAINER (EPHEMERAL)"
        } else {
            "CONTAINER"
        }
        .into(),
        snapshots: snapshots(c, &s.name),
        memory: s.usage.memory,
        limits: s
            .config
            .keys
            .iter()
            .filter(|(k, _)| k.starts_with("limits."))
            .map(|(k, v)| format!("{}={v}", k.trim_start_matches("limits.")))
            .collect(),
        image: c.image_label(&s.config.image),
    }
}

/// Every container that matches all `filters`, sorted by name.
fn rows(c: &Containers, filters: &[Filter]) -> Result<Vec<Row>> {
    Ok(c.list()?
        .iter()
        .filter_map(|s| {
            let r = row(c, s);
            filters.iter().all(|f| f.matches(&r, s)).then_some(r)
        })
        .collect())
}

/// `--format csv`: RFC 4180 (quoted where a field has a comma, a quote or a line break), a
/// header line of the columns' names in lower case.
fn csv(rows: &[Row], cols: &[Column]) -> String {
    super::format::csv(
        cols.iter().map(|c| c.header().to_ascii_lowercase()),
        rows.iter()
            .map(|r| cols.iter().map(|c| c.cell(r, true)).collect::<Vec<_>>()),
    )
}

/// The table (see [`super::table`]).
fn table(rows: &[Row], cols: &[Column]) -> String {
    let header: Vec<&str> = cols.iter().map(|c| c.header()).collect();
    super::table::render(
        &header,
        rows.iter()
            .map(|r| cols.iter().map(|c| c.cell(r, false)).collect()),
    )
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let cols = columns(&a.columns)?;
    let filters = a
        .filters
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<Result<Vec<_>>>()?;
    let rows = rows(c, &filters)?;
    if !super::format::print_data(&a.format, &rows)? {
        match a.format.as_str() {
            "csv" => print!("{}", csv(&rows, &cols)),
            // lxr's table has no box: `compact` (Incus's borderless table) is the same.
            _ => print!("{}", table(&rows, &cols)),
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, state: &str) -> Row {
        Row {
            name: name.into(),
            state: state.into(),
            pid: None,
            ipv4: vec![],
            ipv6: vec![],
            kind: "CONTAINER".into(),
            snapshots: 0,
            memory: None,
            image: "busybox".into(),
            limits: vec![],
        }
    }

    /// A limit with a comma (`limits.cpu: "0,1"`) stays in its column: the hand-written
    /// output printed `cpu=0,1 memory=256MiB` bare, seven fields under six headers.
    #[test]
    fn csv_quotes_fields_with_commas() {
        let mut c1 = row("c1", "RUNNING");
        c1.pid = Some(42);
        c1.ipv4 = vec!["10.0.2.100 (eth0)".into()];
        c1.memory = Some(1048576);
        c1.limits = vec!["cpu=0,1".into(), "memory=256MiB".into()];
        let mut c2 = row("c2", "STOPPED");
        c2.image = "deb \"12\"".into();
        let out = csv(&[c1, c2], &columns(DEFAULT_COLUMNS).unwrap());
        assert_eq!(
            out,
            "name,state,pid,ipv4,ipv6,type,snapshots,memory,image,limits\n\
             c1,RUNNING,42,10.0.2.100 (eth0),,CONTAINER,0,1048576,busybox,\"cpu=0,1 memory=256MiB\"\n\
             c2,STOPPED,,,,CONTAINER,0,,\"deb \"\"12\"\"\",\n"
        );
        let mut r = ::csv::Reader::from_reader(out.as_bytes());
        let recs: Vec<::csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert!(recs.iter().all(|r| r.len() == 10));
        assert_eq!(&recs[0][9], "cpu=0,1 memory=256MiB");
        assert_eq!(&recs[1][8], "deb \"12\"");
    }

    /// `list`'s NAME column was 20 wide: a longer name pushed every later column out of line.
    #[test]
    fn table_columns_fit_a_63_character_name() {
        let long = format!("a{}", "b".repeat(62));
        let rows = [row(&long, "RUNNING"), row("c1", "STOPPED")];
        let out = table(&rows, &columns("nst").unwrap());
        let lines: Vec<&str> = out.lines().collect();
        let at = |l: &str| l.find("CONTAINER").or_else(|| l.find("TYPE")).unwrap();
        assert_eq!(at(lines[0]), 63 + 2 + "RUNNING".len() + 2, "{out}");
        assert!(lines.iter().all(|l| at(l) == at(lines[0])), "{out}");
        assert!(lines[1].starts_with(&long), "{out}");
    }

    #[test]
    fn columns_are_incus_letters_and_unknown_ones_are_refused() {
        assert_eq!(
            columns("ns46tS").unwrap(),
            [
                Column::Name,
                Column::State,
                Column::Ipv4,
                Column::Ipv6,
                Column::Type,
                Column::Snapshots
            ]
        );
        assert!(columns("nZ").unwrap_err().to_string().contains("'Z'"));
        assert!(columns("").is_err());
    }

    #[test]
    fn bare_word_is_a_prefix_or_an_anchored_regex() {
        let m = |f: &str, name: &str| {
            let Filter::Word(w, re) = Filter::parse(f).unwrap() else {
                panic!("{f}")
            };
            name.starts_with(w.as_str()) || re.is_some_and(|re| re.is_match(name))
        };
        assert!(m("c", "c1"));
        assert!(m("c.*2", "c12"));
        assert!(!m("c.*2", "c21"));
        assert!(!m("1", "c1"));
        // Not a regex: a prefix still.
        assert!(m("c(", "c(x"));
    }

    /// A filter is the user's, but a backtracking engine would make `(a*)*b` against a long
    /// name take ages; regex-lite's is linear.
    #[test]
    fn a_pathological_name_regex_is_quick() {
        let t0 = std::time::Instant::now();
        let Filter::Name(re) = Filter::parse("name=(a*)*(a*)*(a*)*b").unwrap() else {
            panic!()
        };
        let name = "a".repeat(63);
        for _ in 0..100 {
            assert!(!re.is_match(&name));
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn address_filters_take_networks() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(within(a("10.0.2.100"), a("10.0.2.0"), 24));
        assert!(!within(a("10.0.3.100"), a("10.0.2.0"), 24));
        assert!(within(a("10.0.2.100"), a("10.0.2.100"), 32));
        assert!(within(a("fd00::100"), a("fd00::"), 64));
        assert!(!within(a("fd00::100"), a("10.0.2.0"), 0));
        assert!(Filter::parse("ipv4=fd00::1").is_err());
        assert!(Filter::parse("ipv4=10.0.0.0/33").is_err());
        assert!(Filter::parse("name=(").is_err());
    }
}
