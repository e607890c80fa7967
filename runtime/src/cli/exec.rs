//! `lxr exec NAME [-t|-T] [--env K=V]… [--cwd DIR] -- CMD…` ([`Containers::exec`]).

use crate::error::Result;
use crate::lifecycle::{Containers, Exec};
use crate::relay;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name.
    name: String,
    /// Extra environment, KEY=VALUE.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Give the command a terminal (the default when stdin, stdout or stderr is one).
    #[arg(short = 't', long = "force-interactive", visible_alias = "tty")]
    tty: bool,
    /// Never give the command a terminal: connect it through pipes.
    #[arg(short = 'T', long = "force-noninteractive", conflicts_with = "tty")]
    no_tty: bool,
    /// Working directory inside the container.
    #[arg(long, default_value = "/root")]
    cwd: String,
    /// The command.
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    c.exec(
        &a.name,
        &Exec {
            cmd: a.cmd,
            env: a.env,
            cwd: a.cwd,
            mode: relay::mode(a.tty, a.no_tty),
        },
    )
}
