//! `lxr completion bash|zsh|fish` and the hidden `lxr manpage DIR`: shell completions
//! (clap_complete) and man pages (clap_mangen, one per command and subcommand) made from the
//! [`Cli`](super::Cli) definition itself, so every command a build has is in them.
//! `scripts/setup.sh` runs both after building lxr and installs what they write; Incus's
//! `incus completion` and `incus manpage` work the same way. (A `build.rs` cannot see the
//! `Cli` type without moving every subcommand's arguments out of its module.)

use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::error::{Context, Result};

/// Arguments of `completion`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell: bash, zsh or fish.
    #[arg(value_parser = ["bash", "zsh", "fish"])]
    shell: String,
}

/// Arguments of `manpage`.
#[derive(Debug, clap::Args)]
pub struct ManpageArgs {
    /// Directory to write `lxr.1`, `lxr-launch.1`, `lxr-image-import.1`, … into (made if
    /// missing).
    dir: PathBuf,
}

/// Print the completion script of `shell`.
pub fn completion(a: &CompletionArgs) -> Result<i32> {
    let shell = match a.shell.as_str() {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        _ => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut super::Cli::command(), "lxr", &mut out);
    std::io::stdout()
        .write_all(&out)
        .ctx(|| "write the completion script".into())?;
    Ok(0)
}

/// Write one man page per command and subcommand into `dir` (`lxr.1`, `lxr-launch.1`,
/// `lxr-image-import.1`, …; hidden commands have none).
pub fn manpages(a: &ManpageArgs) -> Result<i32> {
    std::fs::create_dir_all(&a.dir).ctx(|| format!("create {}", a.dir.display()))?;
    clap_mangen::generate_to(super::Cli::command(), &a.dir)
        .ctx(|| format!("write the man pages into {}", a.dir.display()))?;
    super::say!("Wrote the man pages into {}", a.dir.display());
    Ok(0)
}
