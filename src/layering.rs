//! The layering rules, checked on the source (issue #18): nothing outside `src/cli/`
//! imports `crate::cli`, and the command files of `src/cli/` do not import each other —
//! only `mod.rs` and the shared helpers listed in [`CLI_SHARED`].
//!
//! Owns: those two rules and their messages. Does not own the layout they protect.

use std::path::{Path, PathBuf};

/// The files of `src/cli/` every command may use: rendering, output, the Ctrl-C message,
/// settings loading, filling the working copy of state in S3. A command file is none of these.
const CLI_SHARED: &[&str] = &[
    "output",
    "progress_display",
    "render",
    "interrupt",
    "common",
    "state_backend",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of `text` without line comments (doc comments name modules freely).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment after each `prefix` in `text`, groups (`prefix{a, b::c}`)
/// expanded.
fn first_segments(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let seg: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push(seg);
            }
        } else {
            out.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    out
}

/// Every breach of the rules in the source under `src`, one line each.
fn breaches(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let cli_dir = src.join("cli");
    let commands: Vec<String> = files
        .iter()
        .filter(|p| p.parent() == Some(cli_dir.as_path()))
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_string))
        .filter(|s| s != "mod" && !CLI_SHARED.contains(&s.as_str()))
        .collect();
    let mut found = Vec::new();
    for p in &files {
        let Ok(text) = std::fs::read_to_string(p) else {
            continue;
        };
        let text = code(&text);
        let rel = p.strip_prefix(src).unwrap_or(p).display().to_string();
        if !p.starts_with(&cli_dir) {
            let imports_cli = first_segments(&text, "crate::").iter().any(|s| s == "cli");
            // lib.rs declares the module, main.rs calls it, this file names it in its tests.
            if !["lib.rs", "main.rs", "layering.rs"].contains(&rel.as_str()) && imports_cli {
                found.push(format!(
                    "src/{rel} imports `crate::cli`: only the command line may; move what it needs \
                     out of `src/cli/` (a use case into `src/workflow/`, a ground helper to `src/`)"
                ));
            }
            continue;
        }
        if p.file_stem().is_some_and(|s| s == "mod") {
            continue;
        }
        let mut used: Vec<String> = first_segments(&text, "super::");
        used.extend(first_segments(&text, "crate::cli::"));
        for m in used {
            if commands.contains(&m) && Some(m.as_str()) != p.file_stem().and_then(|s| s.to_str()) {
                found.push(format!(
                    "src/{rel} imports the command file `cli/{m}.rs`: command files do not import \
                     each other; move what both need to `src/workflow/` (logic) or to a shared \
                     helper ({}) and list it in `CLI_SHARED` in src/layering.rs",
                    CLI_SHARED.join(", ")
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn only_the_cli_imports_cli_and_its_command_files_do_not_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = breaches(&src);
    assert!(
        found.is_empty(),
        "layering rules broken:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rules_catch_an_upward_import_and_a_command_importing_another() {
    let dir = std::env::temp_dir().join(format!("brokercert-layering-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cli")).expect("temp dir");
    std::fs::create_dir_all(dir.join("workflow")).expect("temp dir");
    let write = |p: &str, t: &str| std::fs::write(dir.join(p), t).expect("temp file");
    write("cli/mod.rs", "mod renew;\nmod schedule;\n");
    write("cli/renew.rs", "use super::output;\n");
    write("cli/output.rs", "");
    write("cli/schedule.rs", "use super::{Cli, renew::RenewArgs};\n");
    write(
        "workflow/renew.rs",
        "// crate::cli in a comment is fine\nuse crate::cli::output;\n",
    );
    let found = breaches(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("src/cli/schedule.rs imports the command file `cli/renew.rs`"));
    assert!(found[1].starts_with("src/workflow/renew.rs imports `crate::cli`"));
}
