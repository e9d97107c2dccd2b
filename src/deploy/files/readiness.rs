//! Whether the `files` target could deploy from this machine (`brokercert doctor`): each
//! destination's directory writable by this user, the reload command present.
//!
//! Owns: those two checks and their wording. Does not own writing or reloading (`files`).

use std::path::{Path, PathBuf};

use crate::deploy::Readiness;

/// Whether `path` can be replaced the way the target writes it: a temporary file in the
/// directory of the file the path finally names (a link is followed), then a rename. That
/// needs write and search permission on that directory, whether or not the file exists.
pub fn writable(setting: &str, path: &Path) -> Readiness {
    let check = format!("`{setting}` path");
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let Some(dir) = real.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return fail(
            check,
            format!("`{}` has no directory", path.display()),
            format!("give `{setting}` as an absolute path to a file"),
        );
    };
    use rustix::fs::{Access, access};
    match access(dir, Access::WRITE_OK | Access::EXEC_OK) {
        Ok(()) => Readiness {
            check,
            ok: true,
            evidence: format!(
                "`{}` can be written (its directory `{}` is writable by this user)",
                path.display(),
                dir.display()
            ),
            fix: None,
        },
        Err(e) if !dir.exists() => fail(
            check,
            format!(
                "the directory `{}` of `{}` does not exist ({e})",
                dir.display(),
                path.display()
            ),
            format!("create it: `sudo install -d {}`", dir.display()),
        ),
        Err(e) => fail(
            check,
            format!(
                "this user may not create files in `{}`, the directory of `{}` ({e})",
                dir.display(),
                path.display()
            ),
            format!(
                "run brokercert as a user that may, or give it the directory: `sudo chown $(id -un) {}`",
                dir.display()
            ),
        ),
    }
}

/// Whether the reload command's program exists and is executable: a path as given, a bare
/// name on `PATH` (the reload runs with this process's `PATH`, see `child_env`).
pub fn reload_present(argv: &[String]) -> Readiness {
    let check = "reload command".to_string();
    let Some(prog) = argv.first() else {
        return Readiness {
            check,
            ok: true,
            evidence:
                "none configured (`reload` is empty): the broker must pick up new files itself"
                    .into(),
            fix: None,
        };
    };
    let found = if prog.contains('/') {
        executable(Path::new(prog)).then(|| PathBuf::from(prog))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(prog))
                .find(|p| executable(p))
        })
    };
    match found {
        Some(p) => Readiness {
            check,
            ok: true,
            evidence: format!("`{}` found at `{}` (not run)", argv.join(" "), p.display()),
            fix: None,
        },
        None => fail(
            check,
            format!(
                "`{prog}` (the first word of `reload`) is not {}",
                if prog.contains('/') {
                    "an executable file".to_string()
                } else {
                    "an executable on PATH".to_string()
                }
            ),
            "install it, or give `reload` the program's full path".into(),
        ),
    }
}

fn executable(p: &Path) -> bool {
    p.is_file() && rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok()
}

fn fail(check: String, evidence: String, fix: String) -> Readiness {
    Readiness {
        check,
        ok: false,
        evidence,
        fix: Some(fix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_and_a_missing_program_fail_with_the_fix() {
        let r = writable("key", Path::new("/nonexistent-brokercert/dir/privkey.pem"));
        assert!(!r.ok);
        assert!(
            r.fix.as_deref().unwrap_or("").contains("install -d"),
            "{r:?}"
        );
        let r = reload_present(&["no-such-program-brokercert".into()]);
        assert!(!r.ok, "{r:?}");
        let r = reload_present(&["sh".into(), "-c".into(), "true".into()]);
        assert!(r.ok, "{r:?}");
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(writable("key", &dir.path().join("k.pem")).ok);
    }
}
