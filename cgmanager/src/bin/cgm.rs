//! `cgm`: the command-line client of cgmanager.

fn main() -> std::process::ExitCode {
    cgmanager::cgm::main()
}
