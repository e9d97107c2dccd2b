//! `brokercert man`: the manual page (roff) on stdout, for `man -l -` or packaging.
//!
//! Owns: rendering the page from the command-line definition. Does not own the definition.

use clap::Args;

use crate::error::exit;

/// Flags of `man`.
#[derive(Debug, Args)]
pub struct ManArgs {}

/// Prints the manual page; a closed pipe ends it quietly with exit 0.
pub fn run(_args: &ManArgs) -> i32 {
    let mut page = Vec::new();
    // The exit codes get a section of their own (EXIT STATUS), not the --help epilogue.
    let cmd = super::command_line().after_help("");
    if let Err(e) = clap_mangen::Man::new(cmd).render(&mut page) {
        eprintln!("error: cannot render the manual page: {e}");
        return exit::INTERNAL;
    }
    page.extend_from_slice(exit_status_section().as_bytes());
    super::output::write_stdout(&page)
}

/// The manual's EXIT STATUS section (roff).
fn exit_status_section() -> String {
    let mut t = String::from(".SH \"EXIT STATUS\"\n");
    for (code, what) in super::EXIT_CODES {
        t.push_str(&format!(".TP\n\\fB{code}\\fR\n{what}\n"));
    }
    t
}
