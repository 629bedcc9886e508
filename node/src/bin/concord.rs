//! The `concord` binary: see [`node::cli`] for the commands and flags.

fn main() {
    std::process::exit(node::cli::main())
}
