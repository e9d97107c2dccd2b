//! `brokercert completions SHELL`: the shell completion script on stdout.
//!
//! Owns: rendering the script and writing it so that a closed pipe (`| head -1`) ends the
//! command quietly instead of panicking. Does not own the command-line definition.

use std::io::Write;

use clap::Args;
use clap_complete::Shell;

use crate::error::exit;

/// Flags of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the completion script; exit 0 also when the reader closed the pipe early.
pub fn run(args: &CompletionsArgs) -> i32 {
    let mut cmd = super::command_line();
    let mut script = Vec::new();
    // `generate` panics when its writer fails (a closed pipe): render to memory first.
    clap_complete::generate(args.shell, &mut cmd, "brokercert", &mut script);
    write_stdout(&script)
}

/// Writes `bytes` to stdout. A closed pipe is not an error (the reader had enough); any
/// other write error is reported once, without a panic.
pub(crate) fn write_stdout(bytes: &[u8]) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            exit::INTERNAL
        }
    }
}
