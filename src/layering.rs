//! The layering rules, checked on the source (issue #18): nothing outside `src/cli/`
//! imports `crate::cli`, the command files of `src/cli/` do not import each other — only
//! `mod.rs` and the shared helpers listed in [`CLI_SHARED`] — and no two files import each
//! other, directly or round a longer loop (paths through `crate::` and `super::`, outside
//! test modules).
//!
//! Owns: those three rules and their messages. Does not own the layout they protect.

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

/// The module path of the file `rel` (relative to `src`): `workflow/renew/mod.rs` is
/// `workflow::renew`, `lib.rs` is the root.
fn module_of(rel: &Path) -> Vec<String> {
    let mut segs: Vec<String> = rel
        .with_extension("")
        .components()
        .filter_map(|c| c.as_os_str().to_str().map(str::to_string))
        .collect();
    if segs
        .last()
        .is_some_and(|s| s == "mod" || s == "lib" || s == "main")
    {
        segs.pop();
    }
    segs
}

/// The files each file imports (through `crate::` and `super::` paths), by index.
fn import_graph(src: &Path) -> (Vec<String>, Vec<Vec<usize>>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let rels: Vec<PathBuf> = files
        .iter()
        .map(|p| p.strip_prefix(src).unwrap_or(p).to_path_buf())
        .collect();
    let modules: std::collections::HashMap<Vec<String>, usize> = rels
        .iter()
        .enumerate()
        .map(|(i, r)| (module_of(r), i))
        .collect();
    // The file of the longest module prefix of `path`.
    let resolve = |mut path: Vec<String>| loop {
        if let Some(&i) = modules.get(&path) {
            return Some(i);
        }
        path.pop()?;
    };
    let mut edges = vec![Vec::new(); files.len()];
    for (i, p) in files.iter().enumerate() {
        let Ok(text) = std::fs::read_to_string(p) else {
            continue;
        };
        let text = code(text.split("#[cfg(test)]").next().unwrap_or(""));
        let me = module_of(&rels[i]);
        let mut targets = Vec::new();
        for (prefix, base) in [
            ("crate::", Vec::new()),
            ("super::", me[..me.len().saturating_sub(1)].to_vec()),
        ] {
            let mut rest = text.as_str();
            while let Some(k) = rest.find(prefix) {
                // Not the tail of a longer path (`self::super::`, `my_crate::`).
                let before = rest[..k].chars().last();
                rest = &rest[k + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let path: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let mut full = base.clone();
                full.extend(
                    path.split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                );
                // A group (`crate::a::{b, c::d}`): each member.
                if rest[path.len()..].starts_with('{') {
                    let group = &rest[path.len() + 1..];
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    for member in group.split(',') {
                        let mut m = full.clone();
                        m.extend(
                            member
                                .trim()
                                .split("::")
                                .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
                                .filter(|s| !s.is_empty() && s != "self"),
                        );
                        targets.push(m);
                    }
                } else {
                    targets.push(full);
                }
            }
        }
        for t in targets {
            if let Some(j) = resolve(t)
                && j != i
                && !edges[i].contains(&j)
            {
                edges[i].push(j);
            }
        }
    }
    let names = rels
        .iter()
        .map(|r| format!("src/{}", r.display()))
        .collect();
    (names, edges)
}

/// Every loop of imports between files, as `a → b → a`, each found once.
fn cycles(src: &Path) -> Vec<String> {
    let (names, edges) = import_graph(src);
    // Depth-first search; a back edge to a file on the stack closes a loop.
    fn visit(
        v: usize,
        edges: &[Vec<usize>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
        loops: &mut Vec<Vec<usize>>,
    ) {
        state[v] = 1;
        stack.push(v);
        for &w in &edges[v] {
            match state[w] {
                0 => visit(w, edges, state, stack, loops),
                1 => {
                    let from = stack.iter().position(|&x| x == w).unwrap_or(0);
                    loops.push(stack[from..].to_vec());
                }
                _ => {}
            }
        }
        stack.pop();
        state[v] = 2;
    }
    let mut state = vec![0u8; names.len()];
    let mut loops = Vec::new();
    for v in 0..names.len() {
        if state[v] == 0 {
            visit(v, &edges, &mut state, &mut Vec::new(), &mut loops);
        }
    }
    loops
        .into_iter()
        .map(|l| {
            let mut text: Vec<&str> = l.iter().map(|&i| names[i].as_str()).collect();
            text.push(names[l[0]].as_str());
            format!(
                "{}: files that import each other; move what both need into a third module they both import",
                text.join(" → ")
            )
        })
        .collect()
}

#[test]
fn no_two_files_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = cycles(&src);
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn an_import_cycle_is_found_and_named() {
    let dir = std::env::temp_dir().join(format!("brokercert-cycles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("workflow")).expect("temp dir");
    let write = |p: &str, t: &str| std::fs::write(dir.join(p), t).expect("temp file");
    write("lib.rs", "pub mod workflow;\npub mod names;\n");
    write("names.rs", "");
    write("workflow/mod.rs", "pub mod doctor;\npub mod state;\n");
    write(
        "workflow/doctor.rs",
        "use super::state::checks;\nuse crate::names;\n",
    );
    write(
        "workflow/state.rs",
        "use crate::workflow::{doctor::Check, self};\n#[cfg(test)]\nmod tests { use crate::workflow::doctor; }\n",
    );
    let found = cycles(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        found,
        [
            "src/workflow/doctor.rs → src/workflow/state.rs → src/workflow/doctor.rs: files that \
          import each other; move what both need into a third module they both import"
        ]
    );
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
