//! [`StagedFiles`]: a set of files written all-or-nothing. Each file is first
//! written in full to a temporary file next to its destination, with its final
//! mode from the moment it exists, and synced. Only when every file is staged
//! is the set committed: each file about to be replaced is first given a second
//! name (a hard link: the same file, content, owner and mode), then every
//! temporary file is renamed into place (each rename atomic) and the
//! directories synced, and only then are the second names removed. If a step of
//! the commit fails, the files already replaced are renamed back from their
//! second names and those already created are removed, so the destinations are
//! as they were. A failure while staging, or dropping the set uncommitted,
//! removes the temporary files and leaves the destinations untouched. A file
//! staged without `replace` is put in place with a hard link, which fails when
//! the destination exists (even if it appeared after a check).
//!
//! Owns: temporary names, modes, syncing, renaming and undoing. Does not own:
//! what the files are (see `files`).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
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
    /// Device and inode of the temporary file: the destination is ours while it has them.
    id: (u64, u64),
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
            f.sync_all().map_err(write_err("sync", &tmp))?;
            let m = f.metadata().map_err(write_err("inspect", &tmp))?;
            Ok((m.dev(), m.ino()))
        })();
        match result {
            Ok(id) => {
                self.staged.push(Staged {
                    tmp,
                    dest: dest.to_path_buf(),
                    replace,
                    id,
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
    /// directories. On failure every destination is as it was: the files not yet
    /// in place are discarded, those already replaced are put back and those
    /// already created are removed.
    pub fn commit(mut self) -> Result<(), ClientPkiError> {
        let staged = std::mem::take(&mut self.staged);
        let discard = |from: usize| {
            for s in &staged[from..] {
                let _ = fs::remove_file(&s.tmp);
            }
        };
        let forget = |kept: &[Option<PathBuf>]| {
            for k in kept.iter().flatten() {
                let _ = fs::remove_file(k);
            }
        };
        // 1. A second name for each file about to be replaced: nothing visible changes.
        let mut kept: Vec<Option<PathBuf>> = Vec::with_capacity(staged.len());
        for s in &staged {
            match keep_previous(s) {
                Ok(k) => kept.push(k),
                Err(e) => {
                    discard(0);
                    forget(&kept);
                    return Err(e);
                }
            }
        }
        // 2. Swap the new files in.
        for (i, s) in staged.iter().enumerate() {
            let placed = if s.replace {
                fs::rename(&s.tmp, &s.dest)
            } else {
                fs::hard_link(&s.tmp, &s.dest).map(|()| {
                    let _ = fs::remove_file(&s.tmp);
                })
            };
            if let Err(source) = placed {
                discard(i);
                forget(&kept[i..]);
                let action = if s.replace {
                    "rename into place"
                } else {
                    "create"
                };
                return Err(undone(
                    undo(&staged[..i], &kept[..i]),
                    action,
                    &s.dest,
                    source,
                ));
            }
        }
        // 3. Make it durable, then let the previous files go.
        let mut dirs: Vec<&Path> = Vec::new();
        for s in &staged {
            let dir = parent(&s.dest);
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        for dir in dirs {
            if let Err(source) = sync_dir(dir) {
                return Err(undone(
                    undo(&staged, &kept),
                    "sync the directory",
                    dir,
                    source,
                ));
            }
        }
        forget(&kept);
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all())
}

/// Gives the file `s` is about to replace a second name beside it, if there is
/// one to keep (a directory is not: renaming onto it fails by itself).
fn keep_previous(s: &Staged) -> Result<Option<PathBuf>, ClientPkiError> {
    if !s.replace {
        return Ok(None);
    }
    match fs::symlink_metadata(&s.dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ClientPkiError::Write {
                action: "inspect",
                path: s.dest.clone(),
                source,
            });
        }
        Ok(m) if m.is_dir() => return Ok(None),
        Ok(_) => {}
    }
    let name = s
        .dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let keep = parent(&s.dest).join(format!(
        ".{name}.previous-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    fs::hard_link(&s.dest, &keep).map_err(write_err("keep the previous file", &s.dest))?;
    Ok(Some(keep))
}

/// Undoes the files of `placed` (newest first): renames each kept previous file
/// back, removes each created file that is still ours. Returns what could not
/// be undone, with the command that finishes the job.
fn undo(placed: &[Staged], kept: &[Option<PathBuf>]) -> Vec<String> {
    let mut failed = Vec::new();
    for (s, k) in placed.iter().zip(kept).rev() {
        match k {
            Some(k) => {
                if let Err(e) = fs::rename(k, &s.dest) {
                    failed.push(format!(
                        "{}: {e}; the previous file is kept as {}: run `mv {} {}`",
                        s.dest.display(),
                        k.display(),
                        k.display(),
                        s.dest.display()
                    ));
                }
            }
            None => {
                let ours = fs::symlink_metadata(&s.dest).is_ok_and(|m| (m.dev(), m.ino()) == s.id);
                if ours && let Err(e) = fs::remove_file(&s.dest) {
                    failed.push(format!(
                        "{} was created and could not be removed: {e}",
                        s.dest.display()
                    ));
                }
            }
        }
        let _ = sync_dir(parent(&s.dest));
    }
    failed
}

/// The error of a failed commit, saying whether everything was undone.
fn undone(
    failed: Vec<String>,
    action: &'static str,
    path: &Path,
    source: std::io::Error,
) -> ClientPkiError {
    let path = path.to_path_buf();
    if failed.is_empty() {
        ClientPkiError::Write {
            action,
            path,
            source,
        }
    } else {
        ClientPkiError::NotUndone {
            action,
            path,
            source,
            undo: failed.join("; "),
        }
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
    fn a_failed_rename_puts_back_the_files_already_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ca.key");
        let cert = dir.path().join("ca.crt");
        let created = dir.path().join("new.pem");
        fs::write(&key, "old key").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        let before = fs::metadata(&key).unwrap();
        // The rename of the certificate fails: a directory stands where it goes.
        fs::create_dir(&cert).unwrap();
        let mut set = StagedFiles::new();
        set.stage(&key, b"new key", 0o600, true).unwrap();
        set.stage(&created, b"new", 0o644, true).unwrap();
        set.stage(&cert, b"new cert", 0o644, true).unwrap();
        let e = set.commit().unwrap_err();
        match &e {
            ClientPkiError::Write { path, .. } => assert_eq!(path, &cert),
            other => panic!("{other}"),
        }
        assert_eq!(fs::read_to_string(&key).unwrap(), "old key");
        let after = fs::metadata(&key).unwrap();
        assert_eq!(after.ino(), before.ino(), "the very same file is back");
        assert_eq!(after.permissions().mode() & 0o777, 0o600);
        assert!(cert.is_dir());
        assert_eq!(names(dir.path()), ["ca.crt", "ca.key"], "no leftovers");
    }

    #[test]
    fn what_cannot_be_undone_is_named_with_the_command_that_finishes_it() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("ca.key");
        let kept = dir.path().join(".ca.key.previous-1-0");
        fs::write(&dest, "new key").unwrap();
        let placed = [Staged {
            tmp: dir.path().join("tmp"),
            dest: dest.clone(),
            replace: true,
            id: (0, 0),
        }];
        // The kept previous file vanished: renaming it back fails.
        let failed = undo(&placed, &[Some(kept.clone())]);
        let e = undone(
            failed,
            "rename into place",
            &dir.path().join("ca.crt"),
            std::io::Error::from(std::io::ErrorKind::IsADirectory),
        );
        assert!(matches!(e, ClientPkiError::NotUndone { .. }), "{e}");
        assert_eq!(e.exit_code(), crate::error::exit::STORE);
        let text = e.to_string();
        assert!(
            text.contains(&format!("run `mv {} {}`", kept.display(), dest.display()))
                && !text.contains("nothing was written"),
            "{text}"
        );
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
