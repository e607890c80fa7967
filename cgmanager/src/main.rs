//! `cgmanager` daemon entry point (not implemented yet).

fn main() {
    eprintln!(
        "cgmanager: not implemented yet (interface {})",
        cgmanager::INTERFACE
    );
    std::process::exit(1);
}
