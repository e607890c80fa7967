//! `cgm`: CGManager's command-line client, plus the delegation verbs.
//!
//! Output is plain text a script can parse (one item per line; `listkeys` as
//! `name uid gid mode`), or JSON with `--json`. Errors go to stderr as
//! `cgm: <ErrorName>: <message>` with exit status 1 (2 for usage errors).
//!
//! Pid arguments are pids of cgm's own pid namespace: when the daemon answers that they are
//! foreign (cgm runs in a container), cgm repeats the call through the `*Scm` method so the
//! kernel translates them.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::Duration;

use cgmanager_dbus::{connect, DelegationProxy, Error, ManagerProxy, Transport};
use clap::{Parser, Subcommand};
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, socketpair, sockopt, AddressFamily, ControlMessage, MsgFlags,
    SockFlag, SockType, UnixCredentials,
};
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

/// Entry point of the `cgm` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
            match m.move_pid(controller, cgroup, *pid).await {
                Err(Error::ForeignNamespace(_)) => {
                    let (mine, theirs) = pair()?;
                    m.move_pid_scm(controller, cgroup, theirs.as_fd().into())
                        .await?;
                    drop(theirs);
                    scm_byte(&mine, Some(*pid))?;
                }
                r => r?,
            }
            String::new()
        }
        Cmd::Movepidabs {
            controller,
            cgroup,
            pid,
        } => {
            match m.move_pid_abs(controller, cgroup, *pid).await {
                Err(Error::ForeignNamespace(_)) => {
                    let (mine, theirs) = pair()?;
                    m.move_pid_abs_scm(controller, cgroup, theirs.as_fd().into())
                        .await?;
                    drop(theirs);
                    scm_byte(&mine, Some(*pid))?;
                }
                r => r?,
            }
            String::new()
        }
        Cmd::Getpidcgroup { controller, pid } => match m.get_pid_cgroup(controller, *pid).await {
            Err(Error::ForeignNamespace(_)) => {
                let (mine, theirs) = pair()?;
                m.get_pid_cgroup_scm(controller, theirs.as_fd().into())
                    .await?;
                drop(theirs);
                scm_string(&mine, *pid)?
            }
            r => r?,
        },
        Cmd::Getpidcgroupabs { controller, pid } => {
            match m.get_pid_cgroup_abs(controller, *pid).await {
                Err(Error::ForeignNamespace(_)) => {
                    let (mine, theirs) = pair()?;
                    m.get_pid_cgroup_abs_scm(controller, theirs.as_fd().into())
                        .await?;
                    drop(theirs);
                    scm_string(&mine, *pid)?
                }
                r => r?,
            }
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
            let pids = match m.get_tasks(controller, cgroup).await {
                Err(Error::ForeignNamespace(_)) => {
                    let (mine, theirs) = pair()?;
                    m.get_tasks_scm(controller, cgroup, theirs.as_fd().into())
                        .await?;
                    drop(theirs);
                    scm_pids(&mine)?
                }
                r => r?,
            };
            lines(pids.iter().map(i32::to_string).collect())
        }
        Cmd::Gettasksrecursive { controller, cgroup } => {
            let pids = match m.get_tasks_recursive(controller, cgroup).await {
                Err(Error::ForeignNamespace(_)) => {
                    let (mine, theirs) = pair()?;
                    m.get_tasks_recursive_scm(controller, cgroup, theirs.as_fd().into())
                        .await?;
                    drop(theirs);
                    scm_pids(&mine)?
                }
                r => r?,
            };
            lines(pids.iter().map(i32::to_string).collect())
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

/// How long cgm waits for each step of the Scm protocol.
const SCM_WAIT: Duration = Duration::from_secs(5);

fn io(e: nix::Error) -> Error {
    Error::Failed(format!("sockfd: {}", e.desc()))
}

/// A datagram socketpair: our end and the one passed to the daemon.
fn pair() -> Result<(OwnedFd, OwnedFd), Error> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io)?;
    setsockopt(&a, sockopt::PassCred, &true).map_err(io)?;
    let tv = nix::sys::time::TimeVal::new(SCM_WAIT.as_secs() as i64, 0);
    setsockopt(&a, sockopt::ReceiveTimeout, &tv).map_err(io)?;
    Ok((a, b))
}

fn recv(fd: &OwnedFd) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        recvmsg::<()>(fd.as_raw_fd(), &mut iov, None, MsgFlags::empty())
            .map_err(|e| match e {
                nix::errno::Errno::EAGAIN => {
                    Error::Timeout("the daemon did not answer on the side channel".into())
                }
                e => io(e),
            })?
            .bytes
    };
    buf.truncate(n);
    Ok(buf)
}

/// Wait for the daemon's kick, then send credentials naming `pid` (ours for the requestor).
fn send_cred(fd: &OwnedFd, pid: i32) -> Result<(), Error> {
    recv(fd)?;
    let cred = UnixCredentials::from(libc::ucred {
        pid,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    });
    let iov = [IoSlice::new(b"1")];
    sendmsg::<()>(
        fd.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmCredentials(&cred)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| match e {
        nix::errno::Errno::EPERM => Error::PermissionDenied(format!(
            "the kernel refused to vouch for pid {pid} (only root of your namespaces may name \
             other processes)"
        )),
        nix::errno::Errno::ESRCH => Error::NoSuchProcess(format!("no process {pid}")),
        e => io(e),
    })?;
    Ok(())
}

fn scm_byte(fd: &OwnedFd, victim: Option<i32>) -> Result<(), Error> {
    send_cred(fd, nix::unistd::getpid().as_raw())?;
    if let Some(v) = victim {
        send_cred(fd, v)?;
    }
    match recv(fd)?.first() {
        Some(b'1') | Some(b'2') => Ok(()),
        _ => Err(Error::Failed(
            "the daemon refused the request (run the daemon with --debug for why)".into(),
        )),
    }
}

fn scm_string(fd: &OwnedFd, victim: i32) -> Result<String, Error> {
    send_cred(fd, nix::unistd::getpid().as_raw())?;
    send_cred(fd, victim)?;
    let mut b = recv(fd)?;
    if b.is_empty() {
        return Err(Error::Failed("the daemon refused the request".into()));
    }
    if b.last() == Some(&0) {
        b.pop();
    }
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// GetTasksScm's answer: a count, then one message per pid whose credentials the kernel has
/// translated into our pid namespace (0 for a process we cannot see, left out).
fn scm_pids(fd: &OwnedFd) -> Result<Vec<i32>, Error> {
    send_cred(fd, nix::unistd::getpid().as_raw())?;
    let head = recv(fd)?;
    let n = <[u8; 4]>::try_from(head.as_slice())
        .map(i32::from_ne_bytes)
        .map_err(|_| Error::Failed("malformed count on the side channel".into()))?;
    if n < 0 {
        return Err(Error::Failed("the daemon refused the request".into()));
    }
    let mut pids = Vec::new();
    for _ in 0..n {
        let mut buf = [0u8; 8];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!(UnixCredentials);
        let msg = recvmsg::<()>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .map_err(io)?;
        for c in msg.cmsgs().map_err(io)? {
            if let nix::sys::socket::ControlMessageOwned::ScmCredentials(u) = c {
                if u.pid() > 0 {
                    pids.push(u.pid());
                }
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}
