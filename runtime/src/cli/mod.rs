//! The `lxr` command line (LXD-style), one module per subcommand.

mod config;
mod console;
mod delete;
mod exec;
mod freeze;
mod image;
mod info;
mod launch;
mod list;
mod restart;
mod start;
mod stop;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::paths::Paths;

/// lxr: run system containers as an ordinary user.
#[derive(Debug, Parser)]
#[command(name = "lxr", version)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a container from an image and start it.
    Launch(launch::Args),
    /// Start a stopped container.
    Start(start::Args),
    /// Stop a running container.
    Stop(stop::Args),
    /// List containers.
    List(list::Args),
    /// Run a command inside a running container.
    Exec(exec::Args),
    /// Delete a container.
    Delete(delete::Args),
    /// Stop, then start.
    Restart(stop::Args),
    /// Show a container's state, cgroups, limits and usage.
    Info(info::Args),
    /// Freeze every process of a container.
    Freeze(freeze::Args),
    /// Thaw a frozen container.
    Unfreeze(freeze::Args),
    /// Read and change a container's settings.
    Config(config::Args),
    /// Attach to a container's console (Ctrl-a q detaches).
    Console(console::Args),
    /// Import, list and delete images.
    Image(image::Args),
}

/// Entry point of the `lxr` binary.
pub fn main() -> ExitCode {
    // What lxr makes for itself is the user's alone; container content gets its modes
    // explicitly (and its processes a 022 umask, see `launch::exec_into`).
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o077) };
    let cli = Cli::parse();
    let run = || -> Result<i32> {
        crate::fds::cloexec_inherited()?;
        let paths = Paths::from_env()?;
        match cli.cmd {
            Cmd::Launch(a) => launch::run(&paths, a),
            Cmd::Start(a) => start::run(&paths, a),
            Cmd::Stop(a) => stop::run(&paths, a),
            Cmd::List(a) => list::run(&paths, a),
            Cmd::Exec(a) => exec::run(&paths, a),
            Cmd::Delete(a) => delete::run(&paths, a),
            Cmd::Restart(a) => restart::run(&paths, a),
            Cmd::Info(a) => info::run(&paths, a),
            Cmd::Freeze(a) => freeze::run(&paths, a),
            Cmd::Unfreeze(a) => freeze::run_thaw(&paths, a),
            Cmd::Config(a) => config::run(&paths, a),
            Cmd::Console(a) => console::run(&paths, a),
            Cmd::Image(a) => image::run(&paths, a),
        }
    };
    match run() {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("lxr: {e}");
            ExitCode::FAILURE
        }
    }
}
