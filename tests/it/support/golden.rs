//! Golden files and the documented `--json` schema, shared by the tests that check what
//! people and scripts see (`ux.rs`, `doctor.rs`).
//!
//! Owns: normalising run-to-run differences (dates, times, ports, long hex, given literals),
//! comparing with tests/golden/ (`UPDATE_GOLDEN=1` rewrites), and checking JSON objects
//! against the tables of docs/json.md. Does not own any command's expectations.
#![allow(dead_code)]

use std::path::Path;

use serde_json::Value;
// ---------------------------------------------------------------- normalising and goldens

/// `d` matches one ASCII digit, anything else itself.
pub fn matches_at(s: &[char], pat: &str) -> Option<usize> {
    let p: Vec<char> = pat.chars().collect();
    if s.len() < p.len() {
        return None;
    }
    for (c, want) in s.iter().zip(&p) {
        let ok = if *want == 'd' {
            c.is_ascii_digit()
        } else {
            c == want
        };
        if !ok {
            return None;
        }
    }
    Some(p.len())
}

/// Replaces what changes from run to run: the given literal strings first, then dates,
/// times, `127.0.0.1:PORT` and hex runs of 16+ characters (serials, fingerprints).
pub fn normalize(text: &str, literal: &[(String, &str)]) -> String {
    let mut t = text.to_string();
    for (from, to) in literal {
        if !from.is_empty() {
            t = t.replace(from.as_str(), to);
        }
    }
    let s: Vec<char> = t.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let boundary = |j: usize| j == 0 || !s[j - 1].is_ascii_alphanumeric();
    while i < s.len() {
        let rest = &s[i..];
        if let Some(n) = matches_at(rest, "dddd-dd-ddTdd:dd:ddZ") {
            out.push_str("<TIME>");
            i += n;
            continue;
        }
        if let Some(n) = matches_at(rest, "dddd-dd-dd") {
            out.push_str("YYYY-MM-DD");
            i += n;
            continue;
        }
        if boundary(i)
            && let Some(n) = matches_at(rest, "dd:dd:dd")
        {
            out.push_str("HH:MM:SS");
            i += n;
            continue;
        }
        if boundary(i)
            && let Some(n) = matches_at(rest, "dd:dd")
        {
            out.push_str("HH:MM");
            i += n;
            continue;
        }
        if let Some(n) = matches_at(rest, "127.0.0.1:") {
            let digits = rest[n..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 {
                out.push_str("127.0.0.1:PORT");
                i += n + digits;
                continue;
            }
        }
        if boundary(i) {
            let n = rest.iter().take_while(|c| c.is_ascii_hexdigit()).count();
            if n >= 16 && rest.get(n).is_none_or(|c| !c.is_ascii_alphanumeric()) {
                out.push_str("<HEX>");
                i += n;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

pub fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden {} unreadable ({e}); run with UPDATE_GOLDEN=1 to create it. Actual:\n{actual}",
            path.display()
        )
    });
    if want != actual {
        let first = want
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output (first at line {}); UPDATE_GOLDEN=1 rewrites it.\n--- golden\n{want}\n--- actual\n{actual}",
            path.display(),
            first + 1
        );
    }
}

// ---------------------------------------------------------------- the documented schema

/// The (field path, type) rows docs/json.md documents for `command`.
pub fn documented(command: &str) -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json.md"))
        .expect("docs/json.md");
    let heading = format!("## `{command}`");
    let start = doc
        .find(&heading)
        .unwrap_or_else(|| panic!("docs/json.md has no section {heading}"));
    let section = &doc[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut rows = Vec::new();
    for line in section.lines() {
        let line = line.replace("\\|", "\u{1}");
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        rows.push((
            cells[1].trim_matches('`').to_string(),
            cells[2].replace('\u{1}', "|"),
        ));
    }
    assert!(!rows.is_empty(), "no fields documented for {command}");
    rows
}

pub fn type_ok(v: &Value, ty: &str) -> bool {
    ty.split('|').any(|t| match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        other => panic!("docs/json.md uses an unknown type `{other}`"),
    })
}

/// Every value at `path` (`a.b`, `a[].b`).
pub fn values_at<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![v];
    for seg in path.split('.') {
        let (key, each) = match seg.strip_suffix("[]") {
            Some(k) => (k, true),
            None => (seg, false),
        };
        let mut next = Vec::new();
        for c in cur {
            let field = c
                .get(key)
                .unwrap_or_else(|| panic!("field `{path}` missing in {c}"));
            if each {
                next.extend(field.as_array().expect("array").iter());
            } else {
                next.push(field);
            }
        }
        cur = next;
    }
    cur
}

/// Checks one JSON object against docs/json.md: every documented field present with its
/// type, no undocumented top-level field, `schema_version` 1 and the right `command`.
pub fn check_schema(command: &str, obj: &Value) {
    let rows = documented(command);
    assert_eq!(obj["schema_version"], 1, "{obj}");
    assert_eq!(obj["command"], command, "{obj}");
    for (path, ty) in &rows {
        let leaf = path.rsplit('.').next().unwrap_or(path);
        let ty = if leaf.ends_with("[]") { "array" } else { ty };
        for v in values_at(obj, path.trim_end_matches("[]")) {
            assert!(type_ok(v, ty), "`{path}` should be {ty}, is {v} in {obj}");
        }
    }
    let top: Vec<&str> = rows
        .iter()
        .map(|(p, _)| p.split(['.', '[']).next().unwrap_or(p))
        .collect();
    for k in obj.as_object().expect("object").keys() {
        assert!(
            top.contains(&k.as_str()),
            "`{k}` is not documented in docs/json.md ({command})"
        );
    }
}

/// stdout as JSON Lines, each checked against the schema.
pub fn json_lines(command: &str, stdout: &str) -> Vec<Value> {
    let out: Vec<Value> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}"))
        })
        .collect();
    assert!(!out.is_empty(), "no JSON on stdout");
    for v in &out {
        check_schema(command, v);
    }
    out
}
