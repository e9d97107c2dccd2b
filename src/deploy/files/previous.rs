//! What a `files` target found at each destination before writing, and putting it back
//! when the deployment fails part-way or the reload fails.
//!
//! Before anything is written, every destination is looked at ([`Destination::survey`]):
//! - a symbolic link is followed to the file it finally points to: the new content is
//!   written there (atomically, in that file's directory) and the link stays a link, as a
//!   broker pointed at a link (certbot's `live/` style) expects;
//! - a regular file is kept in memory with its owner, group and mode;
//! - nothing there is remembered as nothing (its directory must exist).
//!
//! Anything that could not be put back exactly stops the deployment before any file is
//! written: a file that cannot be read, a directory, a FIFO or another special file, a
//! symbolic link to nothing. So a file is never replaced, and never deleted by a rollback,
//! without a copy to put back.
//!
//! Putting back ([`put_back`]) rewrites a changed file atomically with its previous content
//! and mode, then gives it back its owner and group; removes a file that did not exist
//! before, but only while it holds what was written; and leaves everything else as it is.
//! The [`Report`] names every file and what became of it.
//!
//! Owns: the survey, the copies and the rollback. Does not own: what is written, or the
//! order and the reload (see `files`).

use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::store::{StoreError, atomic_write};

/// What a destination held before the deployment.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Previous {
    /// Nothing.
    Nothing,
    /// A regular file: its content, owner, group and permission bits.
    File {
        bytes: Vec<u8>,
        uid: u32,
        gid: u32,
        mode: u32,
    },
}

/// One destination: where its bytes go and what was there.
#[derive(Debug)]
pub(super) struct Destination {
    /// The path as configured.
    configured: PathBuf,
    /// Where the bytes go: the configured path, or the file its symbolic link points to.
    pub path: PathBuf,
    /// What `path` held before.
    previous: Previous,
}

/// The text of a store error without its hint about the state directory, which is not
/// where a files target writes.
pub(super) fn io_text(e: StoreError) -> String {
    match e {
        StoreError::Io {
            action,
            path,
            source,
        } => format!("cannot {action} `{}`: {source}", path.display()),
        other => other.to_string(),
    }
}

fn kind(t: fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

impl Destination {
    /// Looks at `configured` (the value of `setting`) and keeps what is there; refuses, with
    /// the reason and the fix, what could not be put back exactly.
    pub fn survey(configured: &Path, setting: &str) -> Result<Destination, String> {
        let elsewhere = format!("or point `{setting}` at another path");
        let path = match fs::symlink_metadata(configured) {
            Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(configured) {
                Ok(target) => target,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let to = fs::read_link(configured).unwrap_or_default();
                    return Err(format!(
                        "`{}` is a symbolic link to `{}`, which does not exist; brokercert writes through a symbolic link only to an existing file. Create the file it points to, replace the link with a regular file, {elsewhere}",
                        configured.display(),
                        to.display()
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "cannot follow the symbolic link `{}`: {e}; replace it with a regular file, {elsewhere}",
                        configured.display()
                    ));
                }
            },
            _ => configured.to_path_buf(),
        };
        let mut d = Destination {
            configured: configured.to_path_buf(),
            path,
            previous: Previous::Nothing,
        };
        match fs::symlink_metadata(&d.path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let dir = d
                    .path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                if !dir.is_dir() {
                    return Err(format!(
                        "the directory `{}` does not exist; create it (`mkdir -p {}`) {elsewhere}",
                        dir.display(),
                        dir.display()
                    ));
                }
            }
            Err(e) => return Err(format!("cannot inspect {}: {e}", d.name())),
            Ok(m) if m.is_file() => {
                let bytes = fs::read(&d.path).map_err(|e| {
                    format!(
                        "cannot read {} ({e}), so it could not be put back if the deployment failed; run brokercert as a user who can read it (it belongs to uid {}, mode {:04o}), or move it away",
                        d.name(),
                        m.uid(),
                        m.mode() & 0o7777
                    )
                })?;
                d.previous = Previous::File {
                    bytes,
                    uid: m.uid(),
                    gid: m.gid(),
                    mode: m.mode() & 0o7777,
                };
            }
            Ok(m) => {
                return Err(format!(
                    "{} is {}, not a regular file; brokercert replaces only regular files (or the file a symbolic link points to). Move it away, {elsewhere}",
                    d.name(),
                    kind(m.file_type())
                ));
            }
        }
        Ok(d)
    }

    /// Whether it held exactly `bytes`.
    pub fn held(&self, bytes: &[u8]) -> bool {
        matches!(&self.previous, Previous::File { bytes: b, .. } if b == bytes)
    }

    /// Whether something was there.
    pub fn existed(&self) -> bool {
        self.previous != Previous::Nothing
    }

    /// The path in backquotes, with the link it was reached through.
    fn name(&self) -> String {
        if self.path == self.configured {
            format!("`{}`", self.path.display())
        } else {
            format!(
                "`{}` (the target of the symbolic link `{}`)",
                self.path.display(),
                self.configured.display()
            )
        }
    }

    /// What `path` holds now, in the terms of `previous`.
    fn now(&self) -> Result<Previous, String> {
        match fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Previous::Nothing),
            Ok(m) if m.is_file() => Ok(Previous::File {
                bytes: fs::read(&self.path).map_err(|e| e.to_string())?,
                uid: m.uid(),
                gid: m.gid(),
                mode: m.mode() & 0o7777,
            }),
            Ok(m) => Err(kind(m.file_type()).to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Rewrites the previous file exactly; the error says what is left to do.
    fn restore(&self, bytes: &[u8], uid: u32, gid: u32, mode: u32) -> Result<(), String> {
        let p = self.path.display();
        atomic_write(&self.path, bytes, mode).map_err(io_text)?;
        std::os::unix::fs::chown(&self.path, Some(uid), Some(gid)).map_err(|e| {
            format!(
                "its content is back but not its owner and group ({e}): run `chown {uid}:{gid} {p}`"
            )
        })?;
        // A change of owner clears the set-user-ID and set-group-ID bits: set them again.
        fs::set_permissions(&self.path, fs::Permissions::from_mode(mode)).map_err(|e| {
            format!("its content, owner and group are back but not its mode ({e}): run `chmod {mode:04o} {p}`")
        })
    }
}

/// What putting back did, file by file.
#[derive(Debug, Default)]
pub(super) struct Report {
    restored: Vec<String>,
    removed: Vec<String>,
    as_found: Vec<String>,
    foreign: Vec<String>,
    failed: Vec<String>,
}

/// Puts back the destinations of `planned` (each with the bytes meant for it) of which the
/// first `attempted` may have been written; the others are left as found.
pub(super) fn put_back(planned: &[(&Destination, &[u8])], attempted: usize) -> Report {
    let mut r = Report::default();
    for (i, (d, wrote)) in planned.iter().enumerate() {
        if i >= attempted {
            r.as_found.push(d.name());
            continue;
        }
        match (&d.previous, d.now()) {
            (previous, Ok(now)) if &now == previous => r.as_found.push(d.name()),
            (
                Previous::File {
                    bytes,
                    uid,
                    gid,
                    mode,
                },
                _,
            ) => match d.restore(bytes, *uid, *gid, *mode) {
                Ok(()) => r.restored.push(d.name()),
                Err(e) => r
                    .failed
                    .push(format!("could not put back {}: {e}", d.name())),
            },
            (Previous::Nothing, Ok(Previous::File { bytes, .. })) if bytes == *wrote => {
                match fs::remove_file(&d.path) {
                    Ok(()) => r.removed.push(d.name()),
                    Err(e) => r.failed.push(format!(
                        "could not remove {}, which did not exist before: {e}",
                        d.name()
                    )),
                }
            }
            (Previous::Nothing, _) => r.foreign.push(d.name()),
        }
    }
    r
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.restored.is_empty() {
            parts.push(format!(
                "the previous files were put back with their content, owner, group and mode: {}",
                self.restored.join(", ")
            ));
        }
        if !self.removed.is_empty() {
            parts.push(format!(
                "removed {}, which did not exist before",
                self.removed.join(", ")
            ));
        }
        if !self.as_found.is_empty() {
            parts.push(format!(
                "left {} as found (not changed)",
                self.as_found.join(", ")
            ));
        }
        if !self.foreign.is_empty() {
            parts.push(format!(
                "left {} as it is now: it holds something brokercert did not write",
                self.foreign.join(", ")
            ));
        }
        parts.extend(self.failed.iter().cloned());
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn survey(p: &Path) -> Destination {
        Destination::survey(p, "key").unwrap()
    }

    #[test]
    fn each_file_is_put_back_removed_or_left_and_the_report_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c, e) = (
            dir.path().join("a.pem"),
            dir.path().join("b.pem"),
            dir.path().join("c.pem"),
            dir.path().join("e.pem"),
        );
        fs::write(&a, "old a").unwrap();
        fs::set_permissions(&a, fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(&c, "old c").unwrap();
        let (da, db, dc, de) = (survey(&a), survey(&b), survey(&c), survey(&e));
        assert!(da.held(b"old a") && !db.held(b""));
        // a and b were written; e appeared with content brokercert did not write; c was
        // not reached.
        atomic_write(&a, b"new a", 0o600).unwrap();
        fs::write(&b, "new b").unwrap();
        fs::write(&e, "theirs").unwrap();
        let planned: Vec<(&Destination, &[u8])> = vec![
            (&da, b"new a"),
            (&db, b"new b"),
            (&de, b"new e"),
            (&dc, b"new c"),
        ];
        let r = put_back(&planned, 3);
        assert_eq!(fs::read_to_string(&a).unwrap(), "old a");
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert!(!b.exists());
        assert_eq!(fs::read_to_string(&e).unwrap(), "theirs", "never deleted");
        assert_eq!(fs::read_to_string(&c).unwrap(), "old c");
        let (a, b, c, e) = (a.display(), b.display(), c.display(), e.display());
        assert_eq!(
            r.to_string(),
            format!(
                "the previous files were put back with their content, owner, group and mode: `{a}`; removed `{b}`, which did not exist before; left `{c}` as found (not changed); left `{e}` as it is now: it holds something brokercert did not write"
            )
        );
    }

    #[test]
    fn what_could_not_be_put_back_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let e = Destination::survey(&sub, "chain").unwrap_err();
        assert!(
            e.contains("is a directory, not a regular file") && e.contains("`chain`"),
            "{e}"
        );
        let e = Destination::survey(&dir.path().join("missing/key.pem"), "key").unwrap_err();
        assert!(e.contains("mkdir -p"), "{e}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("nowhere.pem", &link).unwrap();
        let e = Destination::survey(&link, "key").unwrap_err();
        assert!(e.contains("symbolic link to `nowhere.pem`"), "{e}");
    }

    #[test]
    fn a_symbolic_link_is_followed_to_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.pem");
        fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink("real.pem", &link).unwrap();
        let d = survey(&link);
        assert_eq!(d.path, fs::canonicalize(&target).unwrap());
        assert!(d.held(b"old"));
        atomic_write(&d.path, b"new", 0o600).unwrap();
        let r = put_back(&[(&d, b"new")], 1);
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "old");
        assert!(
            r.to_string().contains("the target of the symbolic link"),
            "{r}"
        );
    }
}
