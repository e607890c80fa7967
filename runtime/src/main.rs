//! `lxr`: run system containers as an ordinary user.

fn main() -> std::process::ExitCode {
    runtime::cli::main()
}
