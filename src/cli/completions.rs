//! `brokercert completions SHELL`: the shell completion script on stdout.
//!
//! Owns: rendering the script and writing it so that a closed pipe (`| head -1`) ends the
//! command quietly instead of panicking. Does not own the command-line definition.

use clap::Args;
use clap_complete::Shell;

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
    super::output::write_stdout(&script)
}
