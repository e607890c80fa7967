//! `lxr exec NAME [-t|-T] [--env K[=V]]… [--cwd DIR] [--user UID] [--group GID] [--] CMD…`
//! ([`Containers::exec`]). As in Incus, the command starts at the first argument that is not
//! one of lxr's options: `lxr exec c1 ls -la` and `lxr exec c1 -- ls -la` are the same.

use crate::error::{Error, Result};
use crate::lifecycle::{Containers, Exec};
use crate::relay;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
    /// Environment variable to set, KEY=VALUE; a bare KEY passes lxr's own value of it (repeatable).
    #[arg(long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Give the command a terminal (the default when stdin, stdout or stderr is one).
    #[arg(short = 't', long = "force-interactive", visible_alias = "tty")]
    tty: bool,
    /// Never give the command a terminal: connect it through pipes.
    #[arg(short = 'T', long = "force-noninteractive", conflicts_with = "tty")]
    no_tty: bool,
    /// Incus's spelling of -t/-T: auto (a terminal if stdin, stdout or stderr is one),
    /// interactive, non-interactive.
    #[arg(long, value_parser = ["auto", "interactive", "non-interactive"], conflicts_with_all = ["tty", "no_tty"])]
    mode: Option<String>,
    /// Directory to run the command in (default: the user's home, /root for root); it must exist.
    #[arg(long)]
    cwd: Option<String>,
    /// User ID to run the command as, numeric, in the container.
    #[arg(long, value_name = "UID", default_value_t = 0)]
    user: u32,
    /// Group ID to run the command as, numeric, in the container.
    #[arg(long, value_name = "GID", default_value_t = 0)]
    group: u32,
    /// The command and its arguments (options after the command are the command's).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
}

/// `--env` values as KEY=VALUE: a bare KEY takes lxr's own value (`lookup`), which must be set.
pub fn resolve_env(env: &[String], lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    env.iter()
        .map(|e| {
            if e.is_empty() || e.starts_with('=') {
                return Err(Error::Usage(format!("--env {e:?}: no variable name")));
            }
            if e.contains('=') {
                return Ok(e.clone());
            }
            lookup(e).map(|v| format!("{e}={v}")).ok_or_else(|| {
                Error::Usage(format!(
                    "--env {e}: {e} is not set in lxr's environment (give --env {e}=VALUE)"
                ))
            })
        })
        .collect()
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    let env = resolve_env(&a.env, |k| std::env::var(k).ok())?;
    c.exec(
        &a.name,
        &Exec {
            cmd: a.cmd,
            env,
            cwd: a.cwd,
            user: a.user,
            group: a.group,
            mode: relay::mode(
                a.tty || a.mode.as_deref() == Some("interactive"),
                a.no_tty || a.mode.as_deref() == Some("non-interactive"),
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    #[test]
    fn the_command_needs_no_double_dash_and_keeps_its_options() {
        let t = T::try_parse_from(["lxr", "c1", "ls", "-la", "--cwd", "/x"]).unwrap();
        assert_eq!(t.a.cmd, ["ls", "-la", "--cwd", "/x"]);
        assert_eq!(t.a.cwd, None);
        let t = T::try_parse_from(["lxr", "c1", "--cwd", "/tmp", "--", "ls", "-la"]).unwrap();
        assert_eq!(t.a.cmd, ["ls", "-la"]);
        assert_eq!(t.a.cwd.as_deref(), Some("/tmp"));
        let t = T::try_parse_from(["lxr", "c1", "--mode", "non-interactive", "id"]).unwrap();
        assert_eq!(t.a.mode.as_deref(), Some("non-interactive"));
        assert!(T::try_parse_from(["lxr", "c1", "--mode", "sometimes", "id"]).is_err());
        let t = T::try_parse_from(["lxr", "c1", "--user", "1000", "-T", "id", "-u"]).unwrap();
        assert_eq!((t.a.user, t.a.no_tty, t.a.cmd.len()), (1000, true, 2));
        assert!(T::try_parse_from(["lxr", "c1"]).is_err());
    }

    #[test]
    fn a_bare_env_key_takes_lxrs_value_and_an_unset_one_is_an_error() {
        let look = |k: &str| (k == "FOO").then(|| "bar".to_string());
        assert_eq!(
            resolve_env(&["FOO".into(), "A=b=c".into(), "E=".into()], look).unwrap(),
            ["FOO=bar", "A=b=c", "E="]
        );
        assert!(resolve_env(&["NOPE".into()], look).is_err());
        assert!(resolve_env(&["=x".into()], look).is_err());
    }
}
