//! `lxr file push|pull|edit|delete` with Incus's syntax: container paths are `NAME/PATH`
//! (`c1/etc/hosts`), `-` is stdin or stdout ([`Containers::file_push`] and friends).

use std::io::Write;
use std::path::PathBuf;

use crate::error::{Context, Error, Result};
use crate::lifecycle::{Containers, Pull, Push};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Copy host files into a container (`-` is stdin).
    #[command(override_usage = "lxr file push [OPTIONS] SRC... NAME/PATH")]
    Push {
        /// Directories with everything in them (symlinks are copied as symlinks).
        #[arg(short, long)]
        recursive: bool,
        /// Create the missing parent directories (0755, owned by --uid/--gid).
        #[arg(short = 'p', long = "create-dirs")]
        parents: bool,
        /// Owner in the container (numeric).
        #[arg(long, default_value_t = 0)]
        uid: u32,
        /// Group in the container (numeric).
        #[arg(long, default_value_t = 0)]
        gid: u32,
        /// Mode of the files, octal (default: the source's; 0644 for stdin).
        #[arg(long, value_parser = octal)]
        mode: Option<u32>,
        /// Host files (`-`: stdin), then the target NAME/PATH (into it if it is a directory or ends with /).
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Copy files out of a container (`-` is stdout).
    #[command(override_usage = "lxr file pull [OPTIONS] NAME/PATH... DST")]
    Pull {
        /// Directories with everything in them (symlinks are made as symlinks, never followed;
        /// FIFOs and devices skipped).
        #[arg(short, long)]
        recursive: bool,
        /// Create the missing parent directories of DST.
        #[arg(short = 'p', long = "create-dirs")]
        parents: bool,
        /// Container files NAME/PATH, then the host destination (into it if it is a directory).
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Edit a file of a container with $VISUAL or $EDITOR (its new content from stdin when
    /// stdin is not a terminal).
    #[command(override_usage = "lxr file edit NAME/PATH")]
    Edit {
        /// NAME/PATH.
        path: String,
    },
    /// Delete a file, a symlink or an empty directory of a container.
    #[command(override_usage = "lxr file delete [-f] NAME/PATH...")]
    Delete {
        /// A directory with everything in it.
        #[arg(short, long)]
        force: bool,
        /// NAME/PATH.
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

fn octal(s: &str) -> std::result::Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal mode (e.g. 0644)"))
}

/// `NAME/PATH` → `NAME` and `/PATH`.
fn split(p: &str) -> Result<(String, String)> {
    match p.split_once('/') {
        Some((name, path)) if !name.is_empty() => Ok((name.into(), format!("/{path}"))),
        _ => Err(Error::Usage(format!(
            "{p:?} is not NAME/PATH (e.g. c1/etc/hosts)"
        ))),
    }
}

fn warn(warnings: Vec<String>) {
    for w in warnings {
        eprintln!("lxr: warning: {w}");
    }
}

/// Run.
pub fn run(c: &Containers, a: Args) -> Result<i32> {
    match a.cmd {
        Cmd::Push {
            recursive,
            parents,
            uid,
            gid,
            mode,
            mut paths,
        } => {
            let target = paths.pop().unwrap_or_default();
            let (name, path) = split(&target)?;
            let o = Push {
                uid,
                gid,
                mode,
                parents,
                recursive,
            };
            if paths == ["-"] {
                c.file_push_from(&name, &mut std::io::stdin().lock(), &path, &o)?;
            } else {
                if paths.iter().any(|p| p == "-") {
                    return Err(Error::Usage("- (stdin) is pushed alone".into()));
                }
                let srcs: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
                warn(c.file_push(&name, &srcs, &path, &o)?);
            }
        }
        Cmd::Pull {
            recursive,
            parents,
            mut paths,
        } => {
            let dest = paths.pop().unwrap_or_default();
            let mut name = None;
            let mut srcs = Vec::new();
            for p in &paths {
                let (n, path) = split(p)?;
                if name.get_or_insert(n.clone()) != &n {
                    return Err(Error::Usage("pull from one container at a time".into()));
                }
                srcs.push(path);
            }
            let name = name.unwrap_or_default();
            if dest == "-" {
                if srcs.len() != 1 || recursive {
                    return Err(Error::Usage("- (stdout) takes one file".into()));
                }
                let mut out = std::io::stdout().lock();
                c.file_pull_to(&name, &srcs[0], &mut out)?;
                out.flush().ctx(|| "write stdout".into())?;
            } else {
                warn(c.file_pull(
                    &name,
                    &srcs,
                    &PathBuf::from(dest),
                    &Pull { parents, recursive },
                )?);
            }
        }
        Cmd::Edit { path } => {
            let (name, path) = split(&path)?;
            let old = c.file_read(&name, &path)?;
            let new = super::editor::edit(&old.data, "file", None)?;
            if new != old.data || old.meta.is_none() {
                c.file_write(&name, &path, &new, old.meta)?;
            }
        }
        Cmd::Delete { force, paths } => {
            for p in paths {
                let (name, path) = split(&p)?;
                c.file_delete(&name, &path, force)?;
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn container_paths_and_modes_parse() {
        assert_eq!(split("c1/etc/x").unwrap(), ("c1".into(), "/etc/x".into()));
        assert_eq!(split("c1/").unwrap(), ("c1".into(), "/".into()));
        assert!(split("c1").is_err() && split("/etc").is_err());
        assert_eq!(octal("0644"), Ok(0o644));
        assert_eq!(octal("4755"), Ok(0o4755));
        assert!(octal("0999").is_err() && octal("77777").is_err());
    }
}
