//! `cgmanager`: the daemon.

fn main() -> std::process::ExitCode {
    cgmanager::daemon::main()
}
