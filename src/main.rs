//! The `brokercert` binary: parse the command line, run it, exit with a documented code.

fn main() {
    std::process::exit(brokercert::cli::main());
}
