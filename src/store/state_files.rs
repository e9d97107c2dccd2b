//! A directory of the state directory held open to read many state files in it: each is
//! opened by its name relative to the directory (`openat`), with the same rule as
//! [`read_state_file`](super::read_state_file) — no link is followed in the file's place.
//! A no-op `renew` reads two state files per certificate (`renewal/<name>.json`,
//! `live/<name>/cert.pem`); looking up every component of their full paths again was
//! about a tenth of its time.
//!
//! The directory is resolved once, when opened: a run holds the state lock, so nothing
//! replaces it meanwhile. One that cannot be opened (not made yet) is read by path.
//!
//! Owns: that handle and its reads. Does not own the layout (`store`), the checks made
//! before writing (`strict`) or what the files hold.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::StoreError;
use super::strict::{open_error, read_opened, read_state_file};

/// A directory whose state files are read by name.
pub struct StateFiles {
    path: PathBuf,
    dir: Option<OwnedFd>,
}

impl StateFiles {
    /// `path`, opened now (following links to it, as a read by path would); if it cannot
    /// be opened, reads go by path.
    pub fn open(path: &Path) -> StateFiles {
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok();
        StateFiles {
            path: path.to_path_buf(),
            dir,
        }
    }

    /// `path`, not opened: every read goes by path (one-off reads).
    pub fn by_path(path: &Path) -> StateFiles {
        StateFiles {
            path: path.to_path_buf(),
            dir: None,
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state file `name` (a file name, or a relative path whose last component
    /// is the file) without following a link in its place; `None` if it is missing.
    pub fn read(&self, name: &str) -> Result<Option<String>, StoreError> {
        let Some(dir) = &self.dir else {
            return read_state_file(&self.path.join(name));
        };
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => read_opened(File::from(fd), &self.path.join(name)).map(Some),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(open_error(
                &self.path.join(name),
                "read",
                io::Error::from_raw_os_error(e.raw_os_error()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_by_name_as_by_path_and_refuses_a_link_in_a_files_place() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("renewal");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.json"), "{}").unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/cert.pem"), "pem").unwrap();
        std::os::unix::fs::symlink(dir.join("a.json"), dir.join("link.json")).unwrap();
        std::os::unix::fs::symlink(dir.join("nothing"), dir.join("dangling.json")).unwrap();
        // The directory `live/<name>` is a link brokercert makes: followed on the way.
        std::os::unix::fs::symlink(dir.join("sub"), dir.join("via")).unwrap();
        for files in [StateFiles::open(&dir), StateFiles::by_path(&dir)] {
            assert_eq!(files.read("a.json").unwrap().as_deref(), Some("{}"));
            assert_eq!(files.read("missing.json").unwrap(), None);
            assert_eq!(files.read("via/cert.pem").unwrap().as_deref(), Some("pem"));
            for link in ["link.json", "dangling.json"] {
                let e = files.read(link).unwrap_err().to_string();
                assert!(e.contains("symbolic link"), "{link}: {e}");
                assert!(e.contains(&dir.join(link).display().to_string()), "{e}");
            }
        }
        // A directory that does not exist yet: read by path (nothing there).
        let later = StateFiles::open(&tmp.path().join("later"));
        assert_eq!(later.read("a.json").unwrap(), None);
    }
}
