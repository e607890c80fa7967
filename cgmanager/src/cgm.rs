//! `cgm`: CGManager's command-line client, plus the delegation verbs.
//!
//! Output is plain text a script can parse (one item per line; `listkeys` as
//! `name uid gid mode`), or JSON with `--json`. Errors go to stderr as
//! `cgm: <ErrorName>: <message>` with exit status 1 (2 for usage errors).
//!
//! Pid arguments are pids of cgm's own pid namespace: when the daemon answers that they are
//! foreign (cgm runs in a container), cgm repeats the call through the `*Scm` method so the
//! kernel translates them ([`cgmanager_dbus::scm::plain_or_scm`]).

use std::process::ExitCode;

use cgmanager_dbus::scm::{plain_or_scm, Named};
use cgmanager_dbus::{connect, DelegationProxy, Error, ManagerProxy, Transport};
use clap::{Parser, Subcommand};
use serde_json::json;

/// cgm: talk to cgmanager.
#[derive(Debug, Parser)]
#[command(name = "cgm", version)]
pub struct Cli {
    /// The daemon's peer-to-peer socket.
    #[arg(long, global = true, default_value = cgmanager_dbus::DEFAULT_SOCKET_PATH)]
    socket: String,
    /// Talk through a bus instead: ADDRESS, or the system bus when given without a value.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "system", value_name = "ADDRESS")]
    bus: Option<String>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Check the daemon answers.
    Ping,
    /// Create a cgroup (mkdir -p) below your own.
    Create { controller: String, cgroup: String },
    /// Give a cgroup to uid:gid (ids of your user namespace).
    Chown {
        controller: String,
        cgroup: String,
        #[arg(allow_hyphen_values = true)]
        uid: i32,
        #[arg(allow_hyphen_values = true)]
        gid: i32,
    },
    /// chmod a cgroup directory (mode in octal).
    Chmod {
        controller: String,
        cgroup: String,
        mode: String,
    },
    /// chmod a file of a cgroup (mode in octal).
    Chmodfile {
        controller: String,
        cgroup: String,
        file: String,
        mode: String,
    },
    /// Move a process into a cgroup below yours.
    Movepid {
        controller: String,
        cgroup: String,
        #[arg(allow_hyphen_values = true)]
        pid: i32,
    },
    /// Move a process, cgroup given from the hierarchy root.
    Movepidabs {
        controller: String,
        cgroup: String,
        #[arg(allow_hyphen_values = true)]
        pid: i32,
    },
    /// A process's cgroup relative to yours.
    Getpidcgroup {
        controller: String,
        #[arg(allow_hyphen_values = true)]
        pid: i32,
    },
    /// A process's cgroup from the hierarchy root.
    Getpidcgroupabs {
        controller: String,
        #[arg(allow_hyphen_values = true)]
        pid: i32,
    },
    /// Read a cgroup file.
    Getvalue {
        controller: String,
        cgroup: String,
        key: String,
    },
    /// Write a cgroup file.
    Setvalue {
        controller: String,
        cgroup: String,
        key: String,
        value: String,
    },
    /// Remove a cgroup.
    Remove {
        /// Remove child cgroups too.
        #[arg(short, long)]
        recursive: bool,
        controller: String,
        cgroup: String,
    },
    /// Tasks (thread ids, as CGManager gave them) in a cgroup.
    Gettasks { controller: String, cgroup: String },
    /// Tasks in a cgroup and below.
    Gettasksrecursive { controller: String, cgroup: String },
    /// Processes (process ids) in a cgroup.
    Getprocs { controller: String, cgroup: String },
    /// Processes in a cgroup and below.
    Getprocsrecursive { controller: String, cgroup: String },
    /// Child cgroups.
    Listchildren { controller: String, cgroup: String },
    /// Mounted hierarchies.
    Listcontrollers,
    /// Files of a cgroup: name uid gid mode.
    Listkeys { controller: String, cgroup: String },
    /// Remove the empty part of a subtree now, the rest once empty.
    Prune { controller: String, cgroup: String },
    /// Remove a cgroup once it is empty.
    Removeonempty { controller: String, cgroup: String },
    /// The daemon's CGManager API version.
    Apiversion,
    /// Get (create on demand) your delegated subtree, as the admin's policy allows.
    Delegate {
        #[arg(default_value = "all")]
        controller: String,
    },
    /// Move one of your processes into your delegated subtree.
    Enter {
        controller: String,
        cgroup: String,
        #[arg(allow_hyphen_values = true)]
        pid: i32,
    },
    /// Remove your delegated subtree (it must have no processes).
    Release {
        #[arg(default_value = "all")]
        controller: String,
    },
}

/// `--bus` takes an optional value, so on its own clap reads `cgm --bus ping` as the bus
/// address `ping` and finds no verb. A `--bus` directly followed by one of the verbs means the
/// system bus, as it does after the verb (`cgm ping --bus`): it is passed on as
/// `--bus=system`. (A bus address always has a `:`, so it is never a verb.)
fn bus_before_verb(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut args: Vec<std::ffi::OsString> = args.into_iter().collect();
    for i in 1..args.len() {
        let verb_next = args[i]
            .to_str()
            .is_some_and(|v| cmd.find_subcommand(v).is_some());
        if verb_next && args[i - 1] == "--bus" {
            args[i - 1] = "--bus=system".into();
        }
    }
    args
}

/// Entry point of the `cgm` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse_from(bus_before_verb(std::env::args_os()));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cgm: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&cli)) {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cgm: {}: {}", e.kind(), e.message());
            ExitCode::FAILURE
        }
    }
}

fn mode(s: &str) -> Result<i32, Error> {
    i32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| Error::InvalidArgument(format!("{s:?} is not an octal mode")))
}

async fn run(cli: &Cli) -> Result<String, Error> {
    let transport = match cli.bus.as_deref() {
        None => Transport::Peer(cli.socket.clone()),
        Some("system") => Transport::Bus(None),
        Some(a) => Transport::Bus(Some(a.to_string())),
    };
    let conn = connect(&transport).await?;
    let m = ManagerProxy::new(&conn).await?;
    let d = DelegationProxy::new(&conn).await?;
    let json = cli.json;
    let lines = |v: Vec<String>| {
        if json {
            json!(v).to_string()
        } else {
            v.join("\n")
        }
    };
    let existed = |e: i32| {
        if json {
            json!({ "existed": e == 1 }).to_string()
        } else {
            String::new()
        }
    };
    Ok(match &cli.cmd {
        Cmd::Ping => {
            m.ping(0).await?;
            String::new()
        }
        Cmd::Create { controller, cgroup } => existed(m.create(controller, cgroup).await?),
        Cmd::Chown {
            controller,
            cgroup,
            uid,
            gid,
        } => {
            m.chown(controller, cgroup, *uid, *gid).await?;
            String::new()
        }
        Cmd::Chmod {
            controller,
            cgroup,
            mode: md,
        } => {
            m.chmod(controller, cgroup, "", mode(md)?).await?;
            String::new()
        }
        Cmd::Chmodfile {
            controller,
            cgroup,
            file,
            mode: md,
        } => {
            m.chmod(controller, cgroup, file, mode(md)?).await?;
            String::new()
        }
        Cmd::Movepid {
            controller,
            cgroup,
            pid,
        } => {
            let plain = m.move_pid(controller, cgroup, *pid);
            plain_or_scm(plain, Some(Named::Pid(*pid)), |fd| {
                m.move_pid_scm(controller, cgroup, fd)
            })
            .await?;
            String::new()
        }
        Cmd::Movepidabs {
            controller,
            cgroup,
            pid,
        } => {
            let plain = m.move_pid_abs(controller, cgroup, *pid);
            plain_or_scm(plain, Some(Named::Pid(*pid)), |fd| {
                m.move_pid_abs_scm(controller, cgroup, fd)
            })
            .await?;
            String::new()
        }
        Cmd::Getpidcgroup { controller, pid } => {
            let plain = m.get_pid_cgroup(controller, *pid);
            plain_or_scm(plain, Some(Named::Pid(*pid)), |fd| {
                m.get_pid_cgroup_scm(controller, fd)
            })
            .await?
        }
        Cmd::Getpidcgroupabs { controller, pid } => {
            let plain = m.get_pid_cgroup_abs(controller, *pid);
            plain_or_scm(plain, Some(Named::Pid(*pid)), |fd| {
                m.get_pid_cgroup_abs_scm(controller, fd)
            })
            .await?
        }
        Cmd::Getvalue {
            controller,
            cgroup,
            key,
        } => {
            let v = m.get_value(controller, cgroup, key).await?;
            if json {
                json!({ "value": v }).to_string()
            } else {
                v
            }
        }
        Cmd::Setvalue {
            controller,
            cgroup,
            key,
            value,
        } => {
            m.set_value(controller, cgroup, key, value).await?;
            String::new()
        }
        Cmd::Remove {
            recursive,
            controller,
            cgroup,
        } => existed(m.remove(controller, cgroup, i32::from(*recursive)).await?),
        Cmd::Gettasks { controller, cgroup } => {
            let plain = m.get_tasks(controller, cgroup);
            let pids = plain_or_scm(plain, None, |fd| m.get_tasks_scm(controller, cgroup, fd));
            lines(pids.await?.iter().map(i32::to_string).collect())
        }
        Cmd::Gettasksrecursive { controller, cgroup } => {
            let plain = m.get_tasks_recursive(controller, cgroup);
            let pids = plain_or_scm(plain, None, |fd| {
                m.get_tasks_recursive_scm(controller, cgroup, fd)
            });
            lines(pids.await?.iter().map(i32::to_string).collect())
        }
        Cmd::Getprocs { controller, cgroup } => lines(
            d.get_procs(controller, cgroup)
                .await?
                .iter()
                .map(i32::to_string)
                .collect(),
        ),
        Cmd::Getprocsrecursive { controller, cgroup } => lines(
            d.get_procs_recursive(controller, cgroup)
                .await?
                .iter()
                .map(i32::to_string)
                .collect(),
        ),
        Cmd::Listchildren { controller, cgroup } => {
            lines(m.list_children(controller, cgroup).await?)
        }
        Cmd::Listcontrollers => lines(m.list_controllers().await?),
        Cmd::Listkeys { controller, cgroup } => {
            let keys = m.list_keys(controller, cgroup).await?;
            if json {
                json!(keys
                    .iter()
                    .map(|(n, u, g, md)| json!({"name": n, "uid": u, "gid": g, "mode": format!("{:04o}", md & 0o7777)}))
                    .collect::<Vec<_>>())
                .to_string()
            } else {
                keys.iter()
                    .map(|(n, u, g, md)| format!("{n} {u} {g} {:04o}", md & 0o7777))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Cmd::Prune { controller, cgroup } => {
            m.prune(controller, cgroup).await?;
            String::new()
        }
        Cmd::Removeonempty { controller, cgroup } => {
            m.remove_on_empty(controller, cgroup).await?;
            String::new()
        }
        Cmd::Apiversion => m.api_version().await?.to_string(),
        Cmd::Delegate { controller } => {
            let ds = d.delegate(controller).await?;
            if json {
                json!(ds
                    .iter()
                    .map(|(h, p)| json!({"hierarchy": h, "path": p}))
                    .collect::<Vec<_>>())
                .to_string()
            } else {
                ds.iter()
                    .map(|(h, p)| format!("{h} {p}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Cmd::Enter {
            controller,
            cgroup,
            pid,
        } => {
            d.enter(controller, cgroup, *pid).await?;
            String::new()
        }
        Cmd::Release { controller } => {
            let n = d.release(controller).await?;
            if json {
                json!({ "removed": n }).to_string()
            } else {
                n.to_string()
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let argv = std::iter::once("cgm")
            .chain(args.iter().copied())
            .map(Into::into);
        match Cli::try_parse_from(bus_before_verb(argv)) {
            Ok(c) => c,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    /// The README's `cgm --bus ping` and the form after the verb mean the same: the system
    /// bus; an address is taken in either position, with or without `=`.
    #[test]
    fn bus_goes_before_or_after_the_verb() {
        for args in [
            &["--bus", "ping"][..],
            &["ping", "--bus"],
            &["--bus=system", "ping"],
            &["--bus", "--json", "ping"],
        ] {
            let c = parse(args);
            assert_eq!(c.bus.as_deref(), Some("system"), "{args:?}");
            assert!(matches!(c.cmd, Cmd::Ping), "{args:?}");
        }
        let addr = "unix:path=/run/x";
        for args in [
            &["--bus", addr, "ping"][..],
            &[&format!("--bus={addr}"), "ping"],
            &["ping", "--bus", addr],
        ] {
            let c = parse(args);
            assert_eq!(c.bus.as_deref(), Some(addr), "{args:?}");
            assert!(matches!(c.cmd, Cmd::Ping), "{args:?}");
        }
        let c = parse(&["--bus", "getvalue", "memory", "", "memory.max"]);
        assert_eq!(c.bus.as_deref(), Some("system"));
        assert!(matches!(c.cmd, Cmd::Getvalue { ref key, .. } if key == "memory.max"));
        assert_eq!(parse(&["ping"]).bus, None);
    }
}
