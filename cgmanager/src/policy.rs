//! The admin's delegation policy (`/etc/cgmanager/delegation.conf`, TOML): which users or
//! groups may receive a delegated subtree, where it lives in each hierarchy, and its limits.
//!
//! ```toml
//! [[delegate]]
//! users = ["alice", "1001"]       # user names or numeric uids
//! groups = ["lxr"]                # or members of these groups (primary or supplementary)
//! controllers = ["all"]           # or e.g. ["memory", "pids", "unified"]
//! path = "/lxr.slice/%u"          # absolute, in every hierarchy; %u user name, %U uid,
//!                                 # %D the daemon's own cgroup in that hierarchy
//! max_depth = 10                  # levels of cgroups below the delegation point
//! max_cgroups = 1024              # cgroups below the delegation point
//! memory_max = "2G"               # optional ceiling set at the delegation point
//! pids_max = 1000                 # optional
//! ```
//!
//! The first rule that matches the caller applies. A missing file means no delegations.

use std::path::Path;

use serde::Deserialize;

/// A parsed policy file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The rules, first match wins.
    #[serde(default)]
    pub delegate: Vec<Rule>,
}

/// One `[[delegate]]` rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// User names or numeric uids this rule is for.
    #[serde(default)]
    pub users: Vec<String>,
    /// Group names or numeric gids whose members this rule is for.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Controllers (hierarchies) delegated; `all` for every hierarchy.
    #[serde(default = "all")]
    pub controllers: Vec<String>,
    /// Where the subtree lives (absolute path template).
    pub path: String,
    /// Levels of cgroups allowed below the delegation point.
    #[serde(default = "default_depth")]
    pub max_depth: u32,
    /// Cgroups allowed below the delegation point.
    #[serde(default = "default_count")]
    pub max_cgroups: u32,
    /// Memory ceiling written at the delegation point (bytes, or with K/M/G/T suffix).
    #[serde(default)]
    pub memory_max: Option<String>,
    /// Pids ceiling written at the delegation point.
    #[serde(default)]
    pub pids_max: Option<u64>,
}

fn all() -> Vec<String> {
    vec!["all".into()]
}
/// What a user running systemd containers needs: lxr's `lxr/<name>` is 2 levels, a booted
/// Debian 12 adds 3 (`system.slice/<unit>`, `systemd-run --slice=a-b` units), a login
/// session's `user.slice/user-0.slice/user@0.service/app.slice/<unit>` 5: 7 in all, and
/// room for a slice or two more.
fn default_depth() -> u32 {
    10
}
/// A booted Debian 12 container has 16 cgroups per hierarchy (about 25 with a login
/// session): room for a few dozen containers.
fn default_count() -> u32 {
    1024
}

/// A policy file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Unreadable.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML or unknown keys.
    #[error("{path}: {msg}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        msg: String,
    },
}

impl Policy {
    /// Load a policy file; a missing file is an empty policy.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Policy::default()),
            Err(source) => {
                return Err(PolicyError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        Policy::parse(&text).map_err(|msg| PolicyError::Invalid {
            path: path.display().to_string(),
            msg,
        })
    }

    /// Parse and validate policy text.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let p: Policy = toml::from_str(text).map_err(|e| e.to_string())?;
        for (i, r) in p.delegate.iter().enumerate() {
            let n = i + 1;
            if !(r.path.starts_with('/') || r.path.starts_with("%D")) {
                return Err(format!(
                    "rule {n}: path {:?} must be absolute (or start with %D)",
                    r.path
                ));
            }
            if r.path.split('/').any(|c| c == ".." || c == ".") {
                return Err(format!("rule {n}: path {:?} contains . or ..", r.path));
            }
            if r.users.is_empty() && r.groups.is_empty() {
                return Err(format!("rule {n}: names no users and no groups"));
            }
            if r.max_depth == 0 {
                return Err(format!("rule {n}: max_depth must be at least 1"));
            }
            if let Some(m) = &r.memory_max {
                parse_size(m).map_err(|e| format!("rule {n}: memory_max: {e}"))?;
            }
        }
        Ok(p)
    }

    /// The first rule for a user (`uid`, `name`) with groups `gids` (names resolved by the
    /// caller through `group_name`).
    pub fn rule_for(
        &self,
        uid: u32,
        name: Option<&str>,
        gids: &[u32],
        group_name: impl Fn(u32) -> Option<String>,
    ) -> Option<&Rule> {
        let uid_s = uid.to_string();
        self.delegate.iter().find(|r| {
            r.users
                .iter()
                .any(|u| *u == uid_s || Some(u.as_str()) == name)
                || r.groups.iter().any(|g| {
                    gids.iter().any(|gid| {
                        *g == gid.to_string() || group_name(*gid).is_some_and(|n| n == *g)
                    })
                })
        })
    }
}

impl Rule {
    /// Does the rule delegate a hierarchy with these controller names (`unified` for v2)?
    pub fn covers(&self, names: &[String]) -> bool {
        self.controllers
            .iter()
            .any(|c| c == "all" || names.iter().any(|n| n == c))
    }

    /// The delegation point for a user in one hierarchy.
    pub fn expand(&self, user: &str, uid: u32, daemon_cgroup: &str) -> String {
        let d = daemon_cgroup.trim_end_matches('/');
        self.path
            .replace("%u", user)
            .replace("%U", &uid.to_string())
            .replace("%D", d)
    }

    /// The memory ceiling in bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.memory_max.as_deref().and_then(|m| parse_size(m).ok())
    }
}

/// A size in the workspace's one grammar ([`cgroups::size`]: `2G`, `2GiB`, `2GB`, bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    cgroups::size::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[delegate]]
users = ["alice", "1001"]
controllers = ["memory", "unified"]
path = "%D/lxr/%u"
max_depth = 3
max_cgroups = 10
memory_max = "256M"
pids_max = 100

[[delegate]]
groups = ["lxr"]
path = "/users/%U"
"#;

    #[test]
    fn parse_and_match() {
        let p = Policy::parse(EXAMPLE).unwrap();
        assert_eq!(p.delegate.len(), 2);
        let r = p.rule_for(1000, Some("alice"), &[1000], |_| None).unwrap();
        assert_eq!(r.expand("alice", 1000, "/svc/"), "/svc/lxr/alice");
        assert_eq!(r.memory_bytes(), Some(256 << 20));
        assert!(r.covers(&["memory".into()]));
        assert!(!r.covers(&["cpu".into(), "cpuacct".into()]));
        assert!(p.rule_for(1001, None, &[], |_| None).is_some());
        let g = p
            .rule_for(2000, Some("bob"), &[2000, 50], |g| {
                (g == 50).then(|| "lxr".into())
            })
            .unwrap();
        assert_eq!(g.expand("bob", 2000, "/"), "/users/2000");
        assert!(g.covers(&["cpu".into()]));
        assert!(p.rule_for(2000, Some("bob"), &[2000], |_| None).is_none());
    }

    #[test]
    fn the_shipped_example_parses() {
        let p = Policy::parse(include_str!("../delegation.conf.example")).unwrap();
        assert_eq!(p.delegate.len(), 1);
        assert_eq!(p.delegate[0].memory_bytes(), Some(4 << 30));
    }

    #[test]
    fn bad_policies_are_refused() {
        assert!(Policy::parse("[[delegate]]\nusers=[\"a\"]\npath=\"rel\"\n").is_err());
        assert!(Policy::parse("[[delegate]]\nusers=[\"a\"]\npath=\"/a/../b\"\n").is_err());
        assert!(Policy::parse("[[delegate]]\npath=\"/a\"\n").is_err());
        assert!(Policy::parse("[[delegate]]\nusers=[\"a\"]\npath=\"/a\"\nbogus=1\n").is_err());
        assert!(
            Policy::parse("[[delegate]]\nusers=[\"a\"]\npath=\"/a\"\nmemory_max=\"lots\"\n")
                .is_err()
        );
        assert_eq!(Policy::parse("").unwrap(), Policy::default());
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        // The same grammar as lxr's limits (it once took only K/M/G/T).
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert!(parse_size("G").is_err());
    }
}
