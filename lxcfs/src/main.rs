//! `lxcfs`: parse the lxcfs 5.x command line and run the daemon.

use clap::Parser;

fn main() {
    let cli = lxcfs::cli::Cli::parse();
    if let Err(e) = lxcfs::daemon::run(&cli) {
        eprintln!("lxcfs: {e}");
        std::process::exit(1);
    }
}
