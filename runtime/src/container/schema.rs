//! The one list of configuration keys lxr knows (LXD/Incus names), what each takes, and the check
//! every key and value goes through before anything is created or saved — by `launch -c`,
//! `config set`, `config edit`, `profile set|edit`. It is also what `config set --help` lists.

use crate::error::{Error, Result};

/// What a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A `limits.*` value, checked as [`crate::limits`] applies it.
    Limit,
    /// `true` or `false` (also `1`/`0`, `yes`/`no`, as LXD).
    Bool,
    /// An integer (may be negative).
    Int,
    /// A size (`64KiB`, `1MB`, bytes).
    Size,
    /// A `network.*` value, checked by [`crate::net::check_key`].
    Network,
    /// Anything (UTF-8, newlines included).
    Free,
}

/// One key of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Its name (a prefix when it ends with `.`: `user.`).
    pub name: &'static str,
    /// What it takes.
    pub value: Value,
    /// One line on what it does.
    pub help: &'static str,
    /// An example value.
    pub example: &'static str,
}

const fn key(name: &'static str, value: Value, help: &'static str, example: &'static str) -> Key {
    Key {
        name,
        value,
        help,
        example,
    }
}

/// Every key (and key prefix) lxr accepts, in the order `config set --help` lists them.
pub const KEYS: &[Key] = &[
    key(
        "limits.memory",
        Value::Limit,
        "memory limit (cgroup memory.max); free/top inside see it through lxcfs",
        "256MiB",
    ),
    key(
        "limits.cpu",
        Value::Limit,
        "CPUs: a count or a list (cpuset); nproc inside sees it",
        "2",
    ),
    key(
        "limits.cpu.allowance",
        Value::Limit,
        "CPU time: a hard quota, N% of one CPU or RUNms/PERIODms (cpu.max)",
        "50%",
    ),
    key(
        "limits.processes",
        Value::Limit,
        "most processes and threads at once (pids.max)",
        "500",
    ),
    key(
        "boot.autostart",
        Value::Bool,
        "started at the user's login by lxr-autostart.service",
        "true",
    ),
    key(
        "boot.autostart.priority",
        Value::Int,
        "autostart order: higher starts first (default 0)",
        "10",
    ),
    key(
        "boot.autostart.delay",
        Value::Int,
        "seconds to wait after starting this one before the next",
        "5",
    ),
    key(
        crate::net::MODE_KEY,
        Value::Network,
        "network stack: auto (slirp4netns, else pasta), slirp4netns, pasta or none",
        "pasta",
    ),
    key(
        crate::net::LOOPBACK_KEY,
        Value::Network,
        "let the container reach the host's loopback (off by default)",
        "true",
    ),
    key(
        super::config::LOG_SIZE_KEY,
        Value::Size,
        "bound on console.log (older output is dropped)",
        "1MiB",
    ),
    key(
        "user.",
        Value::Free,
        "free-form notes for you and your tools (any text, newlines too)",
        "user.owner=alice",
    ),
];

/// Keys lxr writes for itself; the user may read but not set them.
pub const VOLATILE: &str = "volatile.";

/// `security.*` keys of LXD/Incus: none is implemented by lxr (every container is
/// unprivileged, nesting of user namespaces is always allowed by the kernel's rules).
const SECURITY: &str = "security.";

fn schema_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| {
        if k.name.ends_with('.') {
            name.len() > k.name.len() && name.starts_with(k.name)
        } else {
            k.name == name
        }
    })
}

/// Check a key and its value as the user sets it (`volatile.*` refused).
pub fn check(name: &str, value: &str) -> Result<()> {
    if name.starts_with(VOLATILE) {
        return Err(Error::Usage(format!(
            "{name}: volatile.* keys are lxr's own, read-only"
        )));
    }
    check_stored(name, value)
}

/// Check a key and its value as found in a configuration (`volatile.*` allowed).
pub fn check_stored(name: &str, value: &str) -> Result<()> {
    if name.starts_with(VOLATILE) && name.len() > VOLATILE.len() {
        return Ok(());
    }
    if name == "image" {
        return Err(Error::Usage(
            "image is not a configuration key: the image is chosen at launch".into(),
        ));
    }
    if name.starts_with(SECURITY) {
        return Err(Error::Usage(format!(
            "{name}: not supported by lxr (every container is unprivileged; lxr implements no \
             security.* key)"
        )));
    }
    if name.starts_with("devices.") {
        return Err(Error::Usage(format!(
            "{name}: devices are changed with `lxr config device add|remove`"
        )));
    }
    let Some(k) = schema_key(name) else {
        let hint = suggest(name)
            .map(|s| format!(" (did you mean {s}?)"))
            .unwrap_or_default();
        return Err(Error::Usage(format!(
            "unknown key {name:?}{hint}: `lxr config set --help` lists the keys"
        )));
    };
    let bad = |why: &str| Error::Usage(format!("{name}={value:?}: {why} (e.g. {})", k.example));
    match k.value {
        // limits.cpu needs the available CPUs to check a count; any list will do here.
        Value::Limit => crate::limits::writes(name, value, "0-4095")
            .map(drop)
            .map_err(|e| match e {
                Error::Usage(m) if !m.contains(name) => Error::Usage(format!("{name}: {m}")),
                e => e,
            }),
        Value::Bool => parse_bool(value)
            .map(drop)
            .ok_or_else(|| bad("not a boolean")),
        Value::Int => value
            .trim()
            .parse::<i64>()
            .map(drop)
            .map_err(|_| bad("not an integer")),
        Value::Size => crate::limits::parse_bytes(value)
            .map(drop)
            .map_err(|e| Error::Usage(format!("{name}: {e}"))),
        Value::Network => crate::net::check_key(name, value),
        Value::Free => Ok(()),
    }
}

/// LXD's booleans.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// The closest known key, if one is close (edit distance at most 2, or a known key's
/// parent/child typo such as `limits.mem`).
fn suggest(name: &str) -> Option<&'static str> {
    let keys = || {
        KEYS.iter()
            .filter(|k| !k.name.ends_with('.'))
            .map(|k| k.name)
    };
    keys()
        .map(|k| (distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
        .or_else(|| keys().find(|k| name.contains('.') && k.starts_with(name)))
}

/// Levenshtein distance (the keys are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The key table for `config set --help`.
pub fn help() -> String {
    let mut s = String::from("Keys (LXD/Incus names):\n");
    let width = KEYS.iter().map(|k| k.name.len()).max().unwrap_or(0) + 1;
    for k in KEYS {
        let name = if k.name.ends_with('.') {
            format!("{}*", k.name)
        } else {
            k.name.to_string()
        };
        s.push_str(&format!("  {name:width$} {}\n", k.help));
    }
    s.push_str(&format!(
        "  {:width$} lxr's own (read-only)\n\nsecurity.* keys are not supported by lxr.\n\n\
         Examples:\n",
        "volatile.*"
    ));
    for k in KEYS {
        let kv = if k.name.ends_with('.') {
            k.example.to_string()
        } else {
            format!("{}={}", k.name, k.example)
        };
        s.push_str(&format!("  lxr config set c1 {kv}\n"));
    }
    s.push_str("  lxr config set c1 limits.memory 512MiB     (KEY VALUE also works)\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_and_values() {
        for (k, v) in [
            ("limits.memory", "1GiB"),
            ("limits.cpu", "2"),
            ("limits.cpu.allowance", "50%"),
            ("limits.processes", "100"),
            ("boot.autostart", "true"),
            ("boot.autostart.priority", "-3"),
            ("boot.autostart.delay", "2"),
            ("network.mode", "pasta"),
            ("console.log.size", "1MiB"),
            ("user.note", "a\nb: \"c\""),
            ("user.a:b", "x"),
        ] {
            assert!(check(k, v).is_ok(), "{k}={v}");
        }
    }

    #[test]
    fn bad_keys_and_values_are_refused() {
        for (k, v) in [
            ("limits.memory", "lots"),
            ("limts.memory", "1G"),
            ("boot.autostart", "maybe"),
            ("boot.autostart.delay", "soon"),
            ("security.nesting", "true"),
            ("volatile.x", "1"),
            ("image", "busybox"),
            ("user.", "x"),
            ("nonsense", "1"),
            ("devices.web.type", "proxy"),
        ] {
            assert!(check(k, v).is_err(), "{k}={v}");
        }
        let e = check("limts.memory", "1G").unwrap_err().to_string();
        assert!(e.contains("did you mean limits.memory"), "{e}");
        let e = check("limits.mem", "1G").unwrap_err().to_string();
        assert!(e.contains("did you mean limits.memory"), "{e}");
        let e = check("security.nesting", "true").unwrap_err().to_string();
        assert!(e.contains("not supported by lxr"), "{e}");
        assert!(check_stored("volatile.last_state", "x").is_ok());
    }

    #[test]
    fn help_lists_every_key() {
        let h = help();
        for k in KEYS {
            assert!(h.contains(k.name), "{}", k.name);
        }
    }
}
