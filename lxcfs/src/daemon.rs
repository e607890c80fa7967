//! The daemon's life: logging, the open-files limit, the pidfile lock ([`crate::pidfile`]),
//! the `-l` sampler, mounting (or taking over a live connection, see [`crate::handover`]),
//! waiting for signals, and telling systemd about it all when run as a `Type=notify`
//! service. With `--supervise` it runs [`crate::supervisor`] instead.
//!
//! Signals (the README has the table): SIGUSR1 execs the binary on disk in place (live
//! upgrade; where the kernel cannot resend requests to the successor, after draining those in
//! flight); SIGUSR2 toggles virtualisation ([`crate::switch`], lxcfs 5.0's switch);
//! SIGTERM, SIGINT and SIGQUIT unmount cleanly (a supervised server just stops: its
//! supervisor holds the mount and starts another); SIGHUP is logged and ignored, so a closed
//! terminal does not take every container's `/proc` with it; SIGPIPE is ignored.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::sys::signal::{SigHandler, SigSet, Signal};

use crate::cli::Cli;
use crate::error::StartError;
use crate::fs::Lxcfs;
use crate::fuse_adapter::uring::{self, Mode};
use crate::fuse_adapter::{prepare_mountpoint, Mounted, Serving};
use crate::handover;
use crate::journal::{self, Journal};
use crate::pidfile::PidFile;
use crate::sampler::Sampler;
use crate::supervisor;
use crate::switch::Virtualisation;
use crate::view::Views;

/// How long a live upgrade waits for the requests in flight to be answered, where the
/// kernel cannot resend them (any still running then are replayed from the journal).
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Log to stderr at info, or debug with `-d`; `RUST_LOG=<level>` overrides. A plain level
/// rather than an `EnvFilter`: its regex engine would double the daemon's resident code.
fn init_logging(debug: bool) {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(if debug {
            tracing_subscriber::filter::LevelFilter::DEBUG
        } else {
            tracing_subscriber::filter::LevelFilter::INFO
        });
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// The signals the daemon handles, blocked in every thread and taken with `sigwait`. The
/// mask is inherited across fork and exec, so a supervised child or an upgraded successor
/// has them blocked from its first instruction: one sent while it starts waits for it.
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set
}

/// Raise the soft open-files limit to the hard one: every container whose init is cached
/// costs a pidfd, and the usual soft limit (1024) is far below what a host runs.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!("open files limit raised from {soft} to {hard}"),
            Err(e) => tracing::warn!("cannot raise the open files limit from {soft}: {e}"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!("getrlimit(RLIMIT_NOFILE): {e}"),
    }
}

/// Ignore SIGPIPE, explicitly rather than relying on the Rust runtime's default: a log pipe
/// whose reader went away (or `kill -PIPE`) must not take the mount down.
fn ignore_sigpipe() {
    // SAFETY: installs SIG_IGN, no handler code runs; the previous disposition is not used.
    if let Err(e) = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) } {
        tracing::warn!("cannot ignore SIGPIPE: {e}");
    }
}

/// Two glibc malloc arenas for the whole process. By default each thread that allocates
/// gets its own arena (a 64 MiB reservation of which ~150–200 kB gets touched): with the
/// serving threads (one per CPU over io_uring, the classic worker, the init reaper) that was
/// ~550 kB of the daemon's 3.9 MB RSS. One arena measured worse: two readers' ring threads
/// then contend on its lock (bench, `--cache-ms 0`, 2 readers: meminfo 29k reads/s with one
/// arena, 42k with two, 43k with the default; RSS 3.6, 3.4, 3.7 MB).
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a malloc tunable; called before any other thread starts.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) } != 1 {
        tracing::debug!("mallopt(M_ARENA_MAX, 2) refused");
    }
}

/// Run the daemon until SIGTERM, SIGINT or SIGQUIT. Returns after unmounting (or, for a
/// supervised server, after stopping its workers: the supervisor owns the mount).
pub fn run(cli: &Cli) -> Result<(), StartError> {
    // First thing: a SIGUSR1 that arrives while an upgraded successor starts must not kill
    // it. Blocked before any thread starts, so every thread inherits the mask.
    let set = handled_signals();
    set.thread_block()
        .map_err(|e| StartError::new(format!("block signals: {e}")))?;
    init_logging(cli.debug);
    ignore_sigpipe();
    limit_malloc_arenas();
    raise_nofile();
    if cli.supervise {
        return supervisor::run(cli, &set);
    }
    let (supervised, mut inherited) = handover::take().map_err(StartError::new)?;
    let uring_buffers = uring::take_inherited();
    let virt = Arc::new(
        handover::take_switch()
            .map(Virtualisation::adopt)
            .unwrap_or_else(Virtualisation::shared),
    );
    let extra = cli.extra_mount_opts();
    if !extra.is_empty() && inherited.is_none() {
        tracing::warn!("ignoring unsupported mount options: {}", extra.join(","));
    }
    let mp = &cli.mountpoint;
    let exe = handover::own_path();
    let generation = inherited.as_ref().map_or(1, |i| i.generation);
    // A mount being handed over is served by nobody until we start: do not stat it.
    if inherited.is_none() {
        prepare_mountpoint(mp)?;
    }
    let pidfile = match (
        supervised,
        inherited.as_mut().and_then(|i| i.pidfile.take()),
    ) {
        (true, _) => None,
        (false, Some(f)) => Some(PidFile::adopt(&cli.pidfile, f)),
        (false, None) => Some(PidFile::lock(&cli.pidfile)?),
    };

    let opts = cli.options();
    // The -l sampler runs beside the filesystem, which only reads its table.
    let sampler = opts
        .loadavg
        .then(|| Arc::new(Sampler::start(&opts.proc_root)));
    let views = Views::new(&opts, virt.clone(), sampler.clone())
        .map_err(|e| StartError::new(format!("cannot start: {e}")))?;
    let fs = Arc::new(Lxcfs::new(views));
    let from = inherited.as_ref().map(|i| i.from);
    let journal = match inherited.as_mut().and_then(|i| i.journal.take()) {
        Some(f) => Some(Journal::adopt(f)),
        None => Journal::new(),
    };
    let journal_fd = journal.as_ref().map(|j| j.fd().as_raw_fd());
    let io_uring = io_uring_wanted(cli, supervised, inherited.as_ref(), uring_buffers.is_some())?;
    // Over io_uring the rings serve (one thread per CPU); the classic loop only gets
    // FORGET, INTERRUPT and what comes before the rings start: one thread is enough.
    let threads = cli.threads.unwrap_or_else(|| match io_uring {
        true => 1,
        false => std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2),
    });
    let serving = Serving {
        threads,
        resend: opts.compat.fuse_resend,
        journal,
        io_uring,
        uring_buffers,
    };
    let mut mounted = match inherited {
        Some(i) => Mounted::adopt(fs.clone(), i.fuse, mp, serving)
            .map_err(|e| StartError::new(format!("cannot serve the inherited connection: {e}")))?,
        None => Mounted::mount(fs.clone(), mp, serving)
            .map_err(|e| StartError::new(format!("cannot mount {}: {e}", mp.display())))?,
    };
    tracing::info!(
        "serving {} with {threads} threads (pid {}, generation {generation}{}, lxcfs {} build {})",
        mp.display(),
        std::process::id(),
        from.map(|f| format!(", connection from {f}"))
            .unwrap_or_default(),
        env!("CARGO_PKG_VERSION"),
        crate::build_id()
    );
    if !virt.is_on() {
        tracing::warn!("in non-virtualization mode, as inherited (SIGUSR2 switches back)");
    }
    if !supervised {
        let fd = mounted.fuse_fd();
        match sdnotify::notify(
            &format!("FDSTORE=1\nFDNAME={}", handover::FDSTORE_NAME),
            &[fd],
        ) {
            Ok(true) => tracing::info!("connection parked in systemd's fd store"),
            Ok(false) => {}
            Err(e) => tracing::warn!("could not store the connection with systemd: {e}"),
        }
        if let Some(j) = journal_fd {
            if let Err(e) = sdnotify::notify(
                &format!("FDSTORE=1\nFDNAME={}", journal::FDSTORE_NAME),
                &[j],
            ) {
                tracing::warn!("could not store the request journal with systemd: {e}");
            }
        }
    }
    let _ = sdnotify::notify(&format!("READY=1\nMAINPID={}", std::process::id()), &[]);

    loop {
        match set.wait() {
            Ok(Signal::SIGUSR1) => {
                let Some(exe) = exe.as_deref() else {
                    tracing::error!(
                        "SIGUSR1: cannot tell where the lxcfs binary is; not upgrading"
                    );
                    continue;
                };
                if let Err(why) = handover::preflight(exe) {
                    tracing::error!("SIGUSR1: not upgrading, still serving: {why}");
                    continue;
                }
                tracing::info!("SIGUSR1: handing the connection over to {}", exe.display());
                let _ = sdnotify::notify("RELOADING=1", &[]);
                // The rings must always be drained: the kernel resends nothing a ring fetched.
                let ring = mounted.uses_io_uring();
                let drained = !mounted.kernel_resends() || ring;
                if drained {
                    // The successor could not get these back from the kernel: finish them.
                    match mounted.drain(DRAIN_TIMEOUT) {
                        0 => tracing::info!("requests in flight answered (drained)"),
                        n => tracing::warn!(
                            "{n} request(s) still running after {DRAIN_TIMEOUT:?}: handing \
                             over anyway, the successor replays them from the journal"
                        ),
                    }
                }
                let err = match mounted.fuse() {
                    Some(fuse) => handover::exec_successor(
                        exe,
                        fuse,
                        handover::Handed {
                            pidfile: pidfile.as_ref().map(PidFile::fd),
                            switch: virt.fd(),
                            journal: mounted.journal_fd(),
                            uring: mounted.uring_fd().filter(|_| ring),
                        },
                        supervised,
                        generation,
                    ),
                    None => std::io::Error::from_raw_os_error(libc::EBADF),
                };
                tracing::error!(
                    "upgrade failed, still serving: exec {}: {err}",
                    exe.display()
                );
                if drained {
                    if let Err(e) = mounted.resume() {
                        tracing::error!("cannot serve again after the failed upgrade: {e}");
                    }
                }
                let _ = sdnotify::notify("READY=1", &[]);
            }
            Ok(Signal::SIGUSR2) => Virtualisation::log_toggled(virt.toggle()),
            Ok(Signal::SIGHUP) => {
                tracing::info!("SIGHUP: ignored (SIGUSR1 upgrades, SIGTERM stops)");
            }
            Ok(Signal::SIGCHLD) => {}
            Ok(s) => {
                tracing::info!(
                    "{s}: {}",
                    if supervised { "stopping" } else { "unmounting" }
                );
                break;
            }
            Err(e) => {
                tracing::warn!("waiting for signals failed ({e}); stopping");
                break;
            }
        }
    }
    let stop_sampler = || {
        if let Some(s) = &sampler {
            s.stop();
        }
    };
    if supervised {
        mounted.detach();
        stop_sampler();
        return Ok(());
    }
    let _ = sdnotify::notify("STOPPING=1", &[]);
    let r = mounted.unmount();
    for name in [handover::FDSTORE_NAME, journal::FDSTORE_NAME] {
        let _ = sdnotify::notify(&format!("FDSTOREREMOVE=1\nFDNAME={name}"), &[]);
    }
    stop_sampler();
    drop(pidfile);
    r.map_err(|e| StartError::new(format!("unmount {}: {e}", mp.display())))
}

/// Whether to serve over io_uring (`--io-uring`, see `crate::fuse_adapter::uring`).
///
/// `auto` picks it only where a crash is not meant to be survived anyway: a request a ring
/// had fetched when its server died is never resent by the kernel, and its reader stays stuck
/// until the mount goes away. So not under `--supervise`, nor under systemd (whose fd store
/// would otherwise keep the connection for a successor); for a live upgrade's successor,
/// as its predecessor chose (it passed its ring buffers). `on` is the admin's choice of speed
/// over that guarantee; it needs the host's knob for a new mount.
fn io_uring_wanted(
    cli: &Cli,
    supervised: bool,
    inherited: Option<&handover::Inherited>,
    has_buffers: bool,
) -> Result<bool, StartError> {
    let knob = uring::knob();
    let crash_survival = cli.supervise || supervised || std::env::var_os("NOTIFY_SOCKET").is_some();
    let wanted = match cli.io_uring {
        Mode::Off => false,
        Mode::On => {
            if inherited.is_none() && knob != Some(true) {
                return Err(StartError::new(format!(
                    "--io-uring=on: FUSE over io_uring is {} on this host; as root: \
                     echo Y > {} (Linux >= 6.14 with CONFIG_FUSE_IO_URING), or use \
                     --io-uring=auto",
                    if knob.is_some() {
                        "disabled"
                    } else {
                        "not available"
                    },
                    uring::KNOB
                )));
            }
            if crash_survival {
                tracing::warn!(
                    "--io-uring=on: a crash can leave a reader stuck until the mount goes away \
                     (requests a ring had fetched are never resent); live upgrades are safe"
                );
            }
            true
        }
        Mode::Auto => match inherited {
            Some(_) => has_buffers,
            None => knob == Some(true) && !crash_survival,
        },
    };
    if cli.io_uring == Mode::Auto && !wanted && knob == Some(true) && crash_survival {
        tracing::info!(
            "io_uring: classic transport (auto): a crash must be survived here \
             (--supervise or systemd), which a ring cannot promise"
        );
    }
    Ok(wanted)
}
