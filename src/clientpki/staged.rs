//! [`StagedFiles`]: a set of files written all-or-nothing. Each file is first
//! written in full to a temporary file next to its destination, with its final
//! mode from the moment it exists, and synced; only when every file is staged
//! are they renamed into place (each rename atomic) and the directories synced.
//! A failure while staging, or dropping the set uncommitted, removes the
//! temporary files and leaves the destinations untouched. A file staged
//! without `replace` is put in place with a hard link, which fails when the
//! destination exists (even if it appeared after a check), and is removed
//! again if a later file of the set cannot be put in place.
//!
//! Owns: temporary names, modes, syncing and renaming. Does not own: what the
//! files are (see `files`).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::ClientPkiError;

/// Files waiting to be renamed into place.
#[derive(Debug, Default)]
pub struct StagedFiles {
    staged: Vec<Staged>,
}

#[derive(Debug)]
struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    replace: bool,
}

fn write_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ClientPkiError {
    let path = path.to_path_buf();
    move |source| ClientPkiError::Write {
        action,
        path,
        source,
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl StagedFiles {
    /// An empty set.
    pub fn new() -> StagedFiles {
        StagedFiles::default()
    }

    /// Writes `bytes` to a temporary file beside `dest` with exactly `mode`;
    /// without `replace`, committing fails if `dest` exists by then.
    pub fn stage(
        &mut self,
        dest: &Path,
        bytes: &[u8],
        mode: u32,
        replace: bool,
    ) -> Result<(), ClientPkiError> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent(dest).join(format!(
            ".{name}.tmp-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)
                .map_err(write_err("create", &tmp))?;
            f.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(write_err("set the permissions of", &tmp))?;
            f.write_all(bytes).map_err(write_err("write", &tmp))?;
            f.sync_all().map_err(write_err("sync", &tmp))
        })();
        match result {
            Ok(()) => {
                self.staged.push(Staged {
                    tmp,
                    dest: dest.to_path_buf(),
                    replace,
                });
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Puts every staged file in place, in the order staged, then syncs their
    /// directories. On failure the files not yet in place are discarded and
    /// those created without `replace` are removed again.
    pub fn commit(mut self) -> Result<(), ClientPkiError> {
        let staged = std::mem::take(&mut self.staged);
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut created: Vec<&Path> = Vec::new();
        for (i, s) in staged.iter().enumerate() {
            let placed = if s.replace {
                fs::rename(&s.tmp, &s.dest)
            } else {
                fs::hard_link(&s.tmp, &s.dest).map(|()| {
                    let _ = fs::remove_file(&s.tmp);
                })
            };
            if let Err(source) = placed {
                for left in &staged[i..] {
                    let _ = fs::remove_file(&left.tmp);
                }
                for dest in created {
                    let _ = fs::remove_file(dest);
                }
                return Err(ClientPkiError::Write {
                    action: if s.replace {
                        "rename into place"
                    } else {
                        "create"
                    },
                    path: s.dest.clone(),
                    source,
                });
            }
            if !s.replace {
                created.push(&s.dest);
            }
            let dir = parent(&s.dest).to_path_buf();
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        for dir in dirs {
            fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(write_err("sync the directory", &dir))?;
        }
        Ok(())
    }
}

impl Drop for StagedFiles {
    fn drop(&mut self) {
        for s in &self.staged {
            let _ = fs::remove_file(&s.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn nothing_appears_until_commit_and_modes_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.crt");
        let b = dir.path().join("b.key");
        fs::write(&a, "old").unwrap();
        let mut set = StagedFiles::new();
        set.stage(&a, b"new cert", 0o644, true).unwrap();
        set.stage(&b, b"new key", 0o600, false).unwrap();
        assert_eq!(fs::read_to_string(&a).unwrap(), "old");
        assert!(!b.exists());
        set.commit().unwrap();
        assert_eq!(fs::read_to_string(&a).unwrap(), "new cert");
        assert_eq!(fs::read_to_string(&b).unwrap(), "new key");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&a), 0o644);
        assert_eq!(mode(&b), 0o600);
        assert_eq!(names(dir.path()), ["a.crt", "b.key"]);
    }

    #[test]
    fn a_failure_or_a_drop_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.crt");
        let mut set = StagedFiles::new();
        set.stage(&a, b"x", 0o644, true).unwrap();
        let missing = dir.path().join("no-such-dir").join("b.key");
        let e = set.stage(&missing, b"y", 0o600, true).unwrap_err();
        assert!(e.to_string().contains("no-such-dir"), "{e}");
        drop(set);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn without_replace_an_existing_file_stops_the_whole_set() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ca.key");
        let cert = dir.path().join("ca.crt");
        let mut set = StagedFiles::new();
        set.stage(&key, b"new key", 0o600, false).unwrap();
        set.stage(&cert, b"new cert", 0o644, false).unwrap();
        // Appears after the check, before the commit.
        fs::write(&cert, "theirs").unwrap();
        let e = set.commit().unwrap_err();
        match &e {
            ClientPkiError::Write { source, path, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
                assert_eq!(path, &cert);
            }
            other => panic!("{other}"),
        }
        assert_eq!(fs::read_to_string(&cert).unwrap(), "theirs");
        assert_eq!(
            names(dir.path()),
            ["ca.crt"],
            "the new key was removed again"
        );
    }
}
