//! `lxr`: run system containers as an ordinary user.

fn main() -> std::process::ExitCode {
    lxr::cli::main()
}
