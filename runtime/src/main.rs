//! `lxr` command-line entry point (not implemented yet).

fn main() {
    eprintln!(
        "lxr: not implemented yet (lxcfs expected at {})",
        runtime::LXCFS_MOUNT
    );
    std::process::exit(1);
}
