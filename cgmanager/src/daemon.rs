//! The daemon process: logging, limits, the core, the transports, readiness, signals.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

use crate::caller::HostNs;
use crate::cli::Args;
use crate::manager::{Config, Manager};
use crate::policy::Policy;
use crate::server::{serve_bus, Socket};

/// Our own events at info (debug with `-d` or `RUST_LOG=debug`); zbus's only when they are
/// warnings, or with `RUST_LOG=trace`.
fn init_logging(debug: bool) {
    let ours = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(if debug {
            LevelFilter::DEBUG
        } else {
            LevelFilter::INFO
        });
    let others = if ours == LevelFilter::TRACE {
        ours
    } else {
        LevelFilter::WARN
    };
    let filter = Targets::new()
        .with_target("cgmanager", ours)
        .with_default(others);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_target(false),
        )
        .with(filter)
        .try_init();
}

/// Raise the soft fd limit to the hard one: every client costs a socket and a pidfd.
fn raise_nofile() {
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// What the daemon cannot work without, tried at start so that a kernel too old is told
/// plainly instead of through every call failing: `pidfd_open` (Linux ≥ 5.3) pins callers and
/// the processes they name, `openat2` (Linux ≥ 5.6) opens every cgroup file beneath its mount.
fn check_kernel(layout: &cgroups::Layout) -> Result<(), String> {
    let enosys = |e: Option<i32>| e == Some(libc::ENOSYS);
    if let Err(e) = cgroups::process::Pidfd::open(std::process::id()) {
        if enosys(e.raw_os_error()) {
            return Err("this kernel has no pidfd_open: cgmanager needs Linux 5.6 or later".into());
        }
    }
    if let Some(h) = layout.hierarchies.first() {
        let root =
            cgroups::Cgroup::new(h.version, &h.mount_point, "").map_err(|e| e.to_string())?;
        if let Err(e) = cgroups::beneath::open(&root, None, nix::fcntl::OFlag::O_PATH) {
            if enosys(Some(e.errno())) {
                return Err(
                    "this kernel has no openat2: cgmanager needs Linux 5.6 or later".into(),
                );
            }
        }
    }
    Ok(())
}

/// Entry point of the `cgmanager` binary.
pub fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.debug);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("cgmanager: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        tracing::warn!("not running as root: only what this user may do itself will work");
    }
    raise_nofile();
    let proc_root = std::path::Path::new("/proc");
    let layout = cgroups::Layout::detect(proc_root).map_err(|e| format!("cgroup layout: {e}"))?;
    check_kernel(&layout)?;
    let host = HostNs::detect(proc_root).map_err(|e| e.message().to_string())?;
    let policy = Policy::load(&args.policy).map_err(|e| format!("policy: {e}"))?;
    let config = Config {
        max_depth: args.max_depth,
        peer_pidfd: !args.test_no_peer_pidfd,
        ..Config::default()
    };
    let mut mgr =
        Manager::new(host, layout, config, policy).map_err(|e| e.message().to_string())?;
    if let Err(e) = mgr.take_leaf() {
        tracing::warn!(
            "could not move into a leaf of the daemon's cgroup: {}; delegations below it get \
             no controllers",
            e.message()
        );
    }
    let mgr = Arc::new(mgr);
    tracing::info!(
        "hierarchies: {}; {} delegation rule(s) from {}",
        mgr.list_controllers().join(" "),
        mgr.policy.delegate.len(),
        args.policy.display()
    );
    let rt = match args.threads {
        n if n > 0 => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build()
    .map_err(|e| format!("tokio: {e}"))?;
    rt.block_on(serve(args, mgr))
}

async fn serve(args: Args, mgr: Arc<Manager>) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;

    let socket =
        Socket::bind(&args.socket).map_err(|e| format!("{}: {e}", args.socket.display()))?;
    tracing::info!("serving on unix:path={}", args.socket.display());

    let bus = if args.no_bus {
        None
    } else {
        match serve_bus(args.bus.as_deref(), mgr.clone()).await {
            Ok(b) => {
                tracing::info!(
                    "serving on the bus {}",
                    args.bus.as_deref().unwrap_or("(system)")
                );
                Some(b)
            }
            // An explicit bus must work; the system bus is optional.
            Err(e) if args.bus.is_some() => return Err(format!("bus {:?}: {e}", args.bus)),
            Err(e) => {
                tracing::info!("no system bus ({e}); peer-to-peer only");
                None
            }
        }
    };
    let cache = bus.as_ref().map(|(_, c)| c.clone());

    let watch = tokio::spawn(mgr.watch.clone().run());
    let reaper = tokio::spawn(async move {
        // Bus callers that exited are forgotten.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Some(c) = &cache {
                c.retain(|_, p| p.alive());
            }
        }
    });

    let _ = sdnotify::notify("READY=1\nSTATUS=serving", &[]);
    tokio::select! {
        _ = socket.serve(mgr.clone(), crate::p2p::Limits {
            max_clients: args.max_clients,
            per_user: args.max_clients_per_user.max(1),
            idle: Duration::from_secs(args.idle_timeout.max(1)),
        }) => {}
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    let _ = sdnotify::notify("STOPPING=1", &[]);
    reaper.abort();
    watch.abort();
    drop(bus);
    drop(socket);
    Ok(())
}
