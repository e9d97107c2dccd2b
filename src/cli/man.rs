//! `brokercert man`: the manual page (roff) on stdout, for `man -l -` or packaging.
//!
//! Owns: rendering the page from the command-line definition. Does not own the definition.

use clap::{Args, CommandFactory};

use super::Cli;
use crate::error::exit;

/// Flags of `man`.
#[derive(Debug, Args)]
pub struct ManArgs {}

/// Prints the manual page; a closed pipe ends it quietly with exit 0.
pub fn run(_args: &ManArgs) -> i32 {
    let mut page = Vec::new();
    if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut page) {
        eprintln!("error: cannot render the manual page: {e}");
        return exit::INTERNAL;
    }
    super::completions::write_stdout(&page)
}
