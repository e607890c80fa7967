//! The `lxr` command line (LXD-style), one module per subcommand: each parses its arguments,
//! calls [`crate::lifecycle::Containers`] (or the image store) and prints the answer.

mod autostart;
mod config;
mod console;
mod copy;
mod delete;
mod device;
mod docs;
mod editor;
mod exec;
mod file;
mod format;
mod freeze;
mod image;
mod info;
mod init;
mod launch;
mod list;
mod many;
mod profile;
mod publish;
mod rename;
mod restart;
mod shell;
mod snapshot;
mod start;
mod stop;
mod table;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

use crate::container::State;
use crate::error::Result;
use crate::lifecycle::Containers;
use crate::paths::Paths;

/// lxr: run system containers as an ordinary user.
#[derive(Debug, Parser)]
#[command(name = "lxr", version)]
pub struct Cli {
    /// Print no informational messages (errors and warnings still go to stderr).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

/// `-q/--quiet` was given.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether `-q/--quiet` was given: informational lines ("Started c1") are left out.
pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// `println!` for an informational line, which `-q` leaves out (what a command was asked to
/// show — a list, a config value — is not informational).
macro_rules! say {
    ($($t:tt)*) => {
        if !$crate::cli::quiet() {
            println!($($t)*);
        }
    };
}
pub(crate) use say;

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a container from an image and start it.
    Launch(launch::Args),
    /// Start stopped containers.
    /// Create a container from an image without starting it.
    Init(launch::Args),
    /// Start a stopped container.
    Start(start::Args),
    /// Stop running containers.
    Stop(stop::Args),
    /// List containers (columns with -c, filters as arguments).
    #[command(visible_alias = "ls")]
    List(list::Args),
    /// Run a command inside a running container.
    Exec(exec::Args),
    /// A login shell in a running container (`su -l`, as `incus shell`).
    Shell(shell::Args),
    /// Delete containers.
    #[command(visible_alias = "rm")]
    Delete(delete::Args),
    /// Stop, then start.
    Restart(stop::Args),
    /// Show a container's state, cgroups, limits and usage.
    Info(info::Args),
    /// Freeze every process of containers.
    Freeze(freeze::Args),
    /// Thaw frozen containers.
    Unfreeze(freeze::Unargs),
    /// Read and change a container's settings.
    Config(config::Args),
    /// Attach to a container's console (Ctrl-a q detaches).
    Console(console::Args),
    /// Import, list, export and delete images, and their aliases.
    Image(image::Args),
    /// Copy files into and out of a container, edit and delete them (push, pull, edit, delete).
    File(file::Args),
    /// Print a shell completion script (bash, zsh, fish).
    Completion(docs::CompletionArgs),
    /// Write a man page per command into a directory (as `incus manpage`).
    #[command(hide = true)]
    Manpage(docs::ManpageArgs),
    /// Take, list, delete, restore and rename a container's snapshots.
    Snapshot(snapshot::Args),
    /// Copy a container or one of its snapshots to a new (stopped) container.
    Copy(copy::Args),
    /// Rename a stopped container (or a snapshot: NAME/SNAP NAME/NEW).
    Rename(rename::Args),
    /// Make an image from a stopped container (--force: stop it, and start it again after).
    Publish(publish::Args),
    /// Manage profiles: sets of keys and devices applied to containers.
    Profile(profile::Args),
    /// Start the containers with boot.autostart=true (run at login by lxr-autostart.service).
    #[command(hide = true)]
    Autostart(autostart::Args),
}

/// The warning `start`/`launch` print for a container without a delegated cgroup.
fn warn_unconfined(name: &str, s: &State) {
    if let Some(why) = &s.cgroup.unconfined {
        eprintln!("lxr: warning: {name} runs unconfined: {why}");
    }
}

/// Logs (tracing) go to stderr — the monitor's to its `monitor.log` — at `$LXR_LOG`'s level
/// (`debug` says which kernel paths a start and a stop took), warnings only by default. A
/// plain level rather than an `EnvFilter`, as in lxcfs.
fn init_logging() {
    let level = std::env::var("LXR_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::WARN);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Entry point of the `lxr` binary.
pub fn main() -> ExitCode {
    // What lxr makes for itself is the user's alone; container content gets its modes
    // explicitly (and its processes a 022 umask, see `launch::before_exec`).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    init_logging();
    let cli = Cli::parse();
    QUIET.store(cli.quiet, Ordering::Relaxed);
    let run = || -> Result<i32> {
        // Neither reads nor makes anything of the user's: no data directory needed.
        match &cli.cmd {
            Cmd::Completion(a) => return docs::completion(a),
            Cmd::Manpage(a) => return docs::manpages(a),
            _ => {}
        }
        crate::fds::cloexec_inherited()?;
        let c = Containers::new(Paths::from_env()?);
        match cli.cmd {
            Cmd::Launch(a) => launch::run(&c, a),
            Cmd::Init(a) => init::run(&c, a),
            Cmd::Start(a) => start::run(&c, a),
            Cmd::Stop(a) => stop::run(&c, a),
            Cmd::List(a) => list::run(&c, a),
            Cmd::Exec(a) => exec::run(&c, a),
            Cmd::Shell(a) => shell::run(&c, a),
            Cmd::Delete(a) => delete::run(&c, a),
            Cmd::Restart(a) => restart::run(&c, a),
            Cmd::Info(a) => info::run(&c, a),
            Cmd::Freeze(a) => freeze::run(&c, a),
            Cmd::Unfreeze(a) => freeze::run_thaw(&c, a),
            Cmd::Config(a) => config::run(&c, a),
            Cmd::Console(a) => console::run(&c, a),
            Cmd::Image(a) => image::run(c.paths(), a),
            Cmd::File(a) => file::run(&c, a),
            Cmd::Completion(_) | Cmd::Manpage(_) => Ok(0),
            Cmd::Snapshot(a) => snapshot::run(&c, a),
            Cmd::Copy(a) => copy::run(&c, a),
            Cmd::Rename(a) => rename::run(&c, a),
            Cmd::Publish(a) => publish::run(&c, a),
            Cmd::Profile(a) => profile::run(&c, a),
            Cmd::Autostart(a) => autostart::run(&c, a),
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
