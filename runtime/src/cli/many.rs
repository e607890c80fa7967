//! Verbs that act on several containers — `start`, `stop`, `restart`, `delete`, `freeze`,
//! `unfreeze` take several names or `--all` — as Incus does: each container in turn, in the
//! order given; one failing does not stop the others; one line on stderr per failure; the
//! exit status is 1 if any failed.

use crate::error::{Error, Result};
use crate::lifecycle::{Containers, Status};

/// The containers to act on: `names` as given, or with `all` every container `pick` accepts
/// (`stop --all` the running ones, `start --all` the stopped ones), sorted by name.
pub fn targets(
    c: &Containers,
    names: Vec<String>,
    all: bool,
    pick: impl Fn(&Status) -> bool,
) -> Result<Vec<String>> {
    if !all {
        return Ok(names);
    }
    Ok(c.list()?
        .into_iter()
        .filter(|s| pick(s))
        .map(|s| s.name)
        .collect())
}

/// Run `f` on each of `names`; the exit status: 0 if every one succeeded, else 1 (each
/// failure printed as it happens).
pub fn each(names: &[String], mut f: impl FnMut(&str) -> Result<()>) -> i32 {
    let mut status = 0;
    for n in names {
        if let Err(e) = f(n) {
            report(n, &e);
            status = 1;
        }
    }
    status
}

/// One failure, on one line: the name first unless the message already says it.
fn report(name: &str, e: &Error) {
    let msg = e.to_string();
    let names_it = msg
        .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '-'))
        .any(|w| w == name);
    if names_it {
        eprintln!("lxr: {msg}");
    } else {
        eprintln!("lxr: {name}: {msg}");
    }
}

/// Whether the container runs (frozen or not).
pub fn running(s: &Status) -> bool {
    s.running.is_some()
}

/// Whether the container is stopped.
pub fn stopped(s: &Status) -> bool {
    s.running.is_none()
}

/// Whether the container is frozen.
pub fn frozen(s: &Status) -> bool {
    s.running.is_some() && s.usage.frozen == Some(true)
}
