//! Safe ground for the state directory, in the spirit of OpenSSH's `StrictModes`: the
//! directories brokercert writes keys and state into must belong to the user running it,
//! be writable by no one else, and be reached without following links someone else planted.
//!
//! Checked before every write into the state directory:
//! - the state directory itself is a directory owned by the user running brokercert and not
//!   writable by its group or others (brokercert then sets it to 0700). It may be a symbolic
//!   link (an administrator's `/var/lib/brokercert` → `/srv/brokercert`) if the link itself
//!   belongs to that user or root; the directory it points to is checked as above;
//! - the directory it is in — or, when brokercert creates it, the existing directory it
//!   creates it (and any missing parents, 0700) under — belongs to that user or root and is
//!   not writable by its group or others unless sticky, like `/tmp`, where no one may rename
//!   or delete what is not theirs: whoever may write it could replace the state directory.
//!   Directories further up are not checked (OpenSSH checks up to `/`): replacing one of them
//!   can only put in place directories that the replacer owns, which the two checks above
//!   refuse; and not checking them keeps `/tmp`-style and unusual layouts working;
//! - every directory below it (`archive/<name>`, `live`, `accounts/<host>`, `renewal` …) is
//!   a real directory — never a symbolic link — owned by that user and not writable by its
//!   group or others; brokercert creates them, and sets them, to 0700;
//! - state files are opened without following a symbolic link in their place. The only
//!   links brokercert follows inside the state directory are the `live/<name>` ones it makes.
//!
//! Directories brokercert creates (here and elsewhere, e.g. `split --out`) get their mode at
//! creation — `mkdir` with the mode, then `fchmod` to exactly it — whatever the umask.
//!
//! Owns: these checks and their refusals (with the `chmod`/`chown` to run), opening state
//! files without following links, and creating directories with an exact mode. Does not own
//! the layout (`store`) or what the files hold.

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::OFlags;

use super::{StoreError, io};

/// The mode of the state directory and of every directory in it.
pub const DIR_MODE: u32 = 0o700;

/// Writable by the group or by others.
const SHARED_WRITE: u32 = 0o022;
const STICKY: u32 = 0o1000;

/// The user brokercert runs as (its effective UID, which owns what it creates).
fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn flags(f: OFlags) -> i32 {
    // The flag values are small positive constants.
    f.bits() as i32
}

/// Makes sure `dir` — the state directory `root`, or a directory under it — exists and is
/// safe (see the module doc), creating what is missing with mode 0700.
pub fn ensure_state_dir(root: &Path, dir: &Path) -> Result<(), StoreError> {
    ensure_root(root)?;
    let outside = || StoreError::Io {
        action: "create directory",
        path: dir.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not inside the state directory `{}`", root.display()),
        ),
    };
    let rel = dir.strip_prefix(root).map_err(|_| outside())?;
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(outside());
        };
        cur.push(name);
        match fs::symlink_metadata(&cur) {
            Ok(meta) => check_inside(&cur, &meta)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match create_dir_exact(&cur, DIR_MODE)
            {
                Ok(()) => {}
                // Made by another process meanwhile: check it like any existing one.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let meta = fs::symlink_metadata(&cur).map_err(io("inspect", &cur))?;
                    check_inside(&cur, &meta)?;
                }
                Err(e) => return Err(io("create directory", &cur)(e)),
            },
            Err(e) => return Err(io("inspect", &cur)(e)),
        }
    }
    Ok(())
}

/// The state directory: created if missing (with its missing parents), then checked.
fn ensure_root(root: &Path) -> Result<(), StoreError> {
    let meta = match fs::symlink_metadata(root) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let (base, missing) = missing_dirs(root).map_err(io("inspect", root))?;
            check_parent(&base, root)?;
            create_missing(&missing, DIR_MODE).map_err(io("create directory", root))?;
            fs::symlink_metadata(root).map_err(io("inspect", root))?
        }
        Err(e) => return Err(io("inspect", root)(e)),
    };
    check_parent(&parent_of(root), root)?;
    let meta = if meta.file_type().is_symlink() {
        let me = euid();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(StoreError::Unsafe {
                path: root.to_path_buf(),
                found: format!(
                    "the state directory is a symbolic link{} made by {}",
                    link_target(root),
                    user_label(meta.uid())
                ),
                expected: format!(
                    "a directory of {}'s own, or a link to one that {} or root made",
                    user_name(me),
                    user_name(me)
                ),
                fix: format!(
                    "Remove the link (`rm {}`) and run again, or set `state_dir` (flag \
                     `--state-dir`) to a directory of your own",
                    shell(root)
                ),
            });
        }
        fs::metadata(root).map_err(io("inspect", root))?
    } else {
        meta
    };
    check_dir(root, &meta, Role::StateDir)
}

/// A directory below the state directory: never a link.
fn check_inside(path: &Path, meta: &Metadata) -> Result<(), StoreError> {
    if meta.file_type().is_symlink() {
        return Err(refuse_link(path));
    }
    check_dir(path, meta, Role::Inside)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    StateDir,
    Inside,
}

/// Owned by us, not shared-writable, a directory; then set to 0700 if it is not.
fn check_dir(path: &Path, meta: &Metadata, role: Role) -> Result<(), StoreError> {
    if !meta.is_dir() {
        return Err(StoreError::Unsafe {
            path: path.to_path_buf(),
            found: format!("it is {}", kind(meta)),
            expected: "a directory".into(),
            fix: format!("Move it away (`mv {0} {0}.old`) and run again", shell(path)),
        });
    }
    let me = euid();
    let wrong_owner = meta.uid() != me;
    let shared = meta.mode() & SHARED_WRITE != 0;
    if wrong_owner || shared {
        let what = match role {
            Role::StateDir => "the state directory",
            Role::Inside => "this directory of the state directory",
        };
        return Err(StoreError::Unsafe {
            path: path.to_path_buf(),
            found: format!("{what} {}", owner_and_mode(meta)),
            expected: format!(
                "a directory owned by {} (the user running brokercert) that its group and \
                 others may not write, so that no one else can read or replace the keys and \
                 state in it (as OpenSSH's StrictModes asks of ~/.ssh)",
                user_label(me)
            ),
            fix: format!(
                "Run {}, or set `state_dir` (flag `--state-dir`) to a directory of your own. \
                 Nothing was written there",
                commands(path, wrong_owner, shared.then_some("700"))
            ),
        });
    }
    if meta.mode() & 0o7777 != DIR_MODE {
        fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
            .map_err(io("set permissions of", path))?;
    }
    Ok(())
}

/// The directory the state directory is in (or is created under), `state` being the state
/// directory: owned by us or root, not shared-writable unless sticky.
fn check_parent(parent: &Path, state: &Path) -> Result<(), StoreError> {
    let meta = fs::metadata(parent).map_err(io("inspect", parent))?;
    let me = euid();
    let wrong_owner = meta.uid() != me && meta.uid() != 0;
    let shared = meta.mode() & SHARED_WRITE != 0 && meta.mode() & STICKY == 0;
    if !wrong_owner && !shared {
        return Ok(());
    }
    Err(StoreError::Unsafe {
        path: parent.to_path_buf(),
        found: format!(
            "the directory that holds the state directory `{}` {}",
            state.display(),
            owner_and_mode(&meta)
        ),
        expected: format!(
            "a directory owned by {} that its group and others may not write (unless it is \
             sticky, like /tmp), since whoever may write it can replace the state directory",
            if me == 0 {
                user_label(0)
            } else {
                format!("{} or root", user_label(me))
            }
        ),
        fix: format!(
            "Run {}, or set `state_dir` (flag `--state-dir`) to a directory elsewhere. Nothing \
             was written",
            commands(parent, wrong_owner, shared.then_some("go-w"))
        ),
    })
}

/// "`chown alice PATH` (as root) and `chmod 700 PATH`": what makes `path` pass, with the
/// `chown` when `chown` and this `chmod` mode if any.
fn commands(path: &Path, chown: bool, chmod: Option<&str>) -> String {
    let mut commands = Vec::new();
    if chown {
        commands.push(format!(
            "`chown {} {}` (as root)",
            user_name(euid()),
            shell(path)
        ));
    }
    if let Some(mode) = chmod {
        commands.push(format!("`chmod {mode} {}`", shell(path)));
    }
    commands.join(" and ")
}

/// "is owned by uid 1001 (alice) with mode 0777 (writable by its group and others)".
fn owner_and_mode(meta: &Metadata) -> String {
    let mode = meta.mode() & 0o7777;
    let writers = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => " (writable by its group and others)",
        (true, false) => " (writable by its group)",
        (false, true) => " (writable by others)",
        (false, false) => "",
    };
    format!(
        "is owned by {} with mode {mode:04o}{writers}",
        user_label(meta.uid())
    )
}

fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a special file (socket, FIFO or device)"
    }
}

/// The refusal of a symbolic link brokercert did not make.
fn refuse_link(path: &Path) -> StoreError {
    StoreError::Unsafe {
        path: path.to_path_buf(),
        found: format!(
            "it is a symbolic link{}, which brokercert did not make",
            link_target(path)
        ),
        expected: "a real file or directory: inside the state directory brokercert follows \
                   only the `live/<name>` links it makes, so that a planted link cannot make it \
                   write keys or state where the link points"
            .into(),
        fix: format!(
            "Remove the link (`rm {}`) and run again; if the link was yours, move what it \
             points to into its place. Nothing was written there",
            shell(path)
        ),
    }
}

/// " to `TARGET`", or nothing when it cannot be read.
fn link_target(path: &Path) -> String {
    fs::read_link(path)
        .map(|t| format!(" to `{}`", t.display()))
        .unwrap_or_default()
}

/// Opens the state file `path` with `options`, refusing a symbolic link in its place.
pub fn open_state_file(
    path: &Path,
    options: &mut OpenOptions,
    action: &'static str,
) -> Result<File, StoreError> {
    options
        .custom_flags(flags(OFlags::NOFOLLOW | OFlags::CLOEXEC))
        .open(path)
        .map_err(|e| open_error(path, action, e))
}

/// The error of opening the state file `path` with `O_NOFOLLOW`: a refusal when a link is
/// in its place, else the I/O error.
pub(super) fn open_error(path: &Path, action: &'static str, e: io::Error) -> StoreError {
    // O_NOFOLLOW refuses a link with ELOOP; only then is the name looked at again (to tell
    // a planted link from a loop), so a missing file costs one syscall.
    let loop_error = e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error());
    if loop_error && fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        refuse_link(path)
    } else {
        io(action, path)(e)
    }
}

/// Reads the state file `path` (without following a link in its place); `None` if missing.
pub fn read_state_file(path: &Path) -> Result<Option<String>, StoreError> {
    match open_state_file(path, OpenOptions::new().read(true), "read") {
        Ok(file) => read_opened(file, path).map(Some),
        Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the opened state file `path` to its end.
pub(super) fn read_opened(mut file: File, path: &Path) -> Result<String, StoreError> {
    use std::io::Read;
    // State files are a few KiB: one read fills a buffer of that size and a second sees the
    // end. (`File::read_to_string` first asks the size with `statx` and the position with
    // `lseek`: two more syscalls per file, a thousand files in a no-op renew.)
    let mut text = String::with_capacity(STATE_READ_BUFFER);
    Read::take(&mut file, u64::MAX)
        .read_to_string(&mut text)
        .map_err(io("read", path))?;
    Ok(text)
}

/// The first read's buffer in [`read_state_file`] (a larger file just takes more reads).
const STATE_READ_BUFFER: usize = 8 * 1024;

/// Makes an open state file (the lock) ours with exactly `mode`: refuses one that is not a
/// regular file or belongs to another user, and fixes a mode an older version (or the umask)
/// left.
pub fn own_state_file(path: &Path, file: &File, mode: u32) -> Result<(), StoreError> {
    let meta = file.metadata().map_err(io("inspect", path))?;
    if !meta.is_file() {
        return Err(StoreError::Unsafe {
            path: path.to_path_buf(),
            found: format!("it is {}", kind(&meta)),
            expected: "a regular file made by brokercert".into(),
            fix: format!("Remove it (`rm {}`) and run again", shell(path)),
        });
    }
    let me = euid();
    if meta.uid() != me {
        return Err(StoreError::Unsafe {
            path: path.to_path_buf(),
            found: format!("it {}", owner_and_mode(&meta)),
            expected: format!(
                "a file owned by {} (the user running brokercert)",
                user_label(me)
            ),
            fix: format!(
                "Run {}, or remove it (`rm {}`)",
                commands(path, true, None),
                shell(path)
            ),
        });
    }
    if meta.mode() & 0o7777 != mode {
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io("set permissions of", path))?;
    }
    Ok(())
}

/// Creates the directory `path` (which must not exist; a link in its place is not followed)
/// with exactly `mode`: never wider at any moment, and not narrowed by the umask.
pub fn create_dir_exact(path: &Path, mode: u32) -> io::Result<()> {
    DirBuilder::new().mode(mode).create(path)?;
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(flags(
            OFlags::NOFOLLOW | OFlags::DIRECTORY | OFlags::CLOEXEC,
        ))
        .open(path)?;
    dir.set_permissions(fs::Permissions::from_mode(mode))
}

/// Creates `dir` and its missing parents, each with exactly `mode`; existing directories
/// are left as they are.
pub fn create_dirs(dir: &Path, mode: u32) -> io::Result<()> {
    let (_, missing) = missing_dirs(dir)?;
    create_missing(&missing, mode)
}

/// The nearest existing ancestor of `dir` (or `dir` itself) and the directories missing
/// below it, deepest first. Links above are followed: they are not brokercert's.
fn missing_dirs(dir: &Path) -> io::Result<(PathBuf, Vec<PathBuf>)> {
    let mut missing = Vec::new();
    let mut cur = dir.to_path_buf();
    loop {
        match fs::metadata(&cur) {
            Ok(_) => return Ok((cur, missing)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let next = parent_of(&cur);
                if next == cur {
                    return Err(e);
                }
                missing.push(std::mem::replace(&mut cur, next));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates `missing` (deepest first, as [`missing_dirs`] lists them), outermost first; one
/// another process made meanwhile is fine.
fn create_missing(missing: &[PathBuf], mode: u32) -> io::Result<()> {
    for d in missing.iter().rev() {
        match create_dir_exact(d, mode) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            other => other?,
        }
    }
    Ok(())
}

/// The directory `path` is in (`.` for a bare name, `/` for `/`).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Some(p) => p.to_path_buf(),
        None => path.to_path_buf(),
    }
}

/// The login name of `uid` from `/etc/passwd`, else the number (which `chown` takes too).
fn user_name(uid: u32) -> String {
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// "uid 1001 (alice)".
fn user_label(uid: u32) -> String {
    let name = user_name(uid);
    if name == uid.to_string() {
        format!("uid {uid}")
    } else {
        format!("uid {uid} ({name})")
    }
}

/// `path` as a shell word, for the commands to copy.
fn shell(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_directories_get_exactly_their_mode_and_existing_ones_are_left() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a/b/c");
        create_dirs(&deep, 0o755).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            let mode = fs::metadata(tmp.path().join(d)).unwrap().mode() & 0o7777;
            assert_eq!(mode, 0o755, "{d}");
        }
        fs::set_permissions(tmp.path().join("a"), fs::Permissions::from_mode(0o750)).unwrap();
        create_dirs(&tmp.path().join("a/d"), 0o700).unwrap();
        assert_eq!(
            fs::metadata(tmp.path().join("a")).unwrap().mode() & 0o7777,
            0o750
        );
    }

    #[test]
    fn a_state_file_is_read_whole_a_missing_one_is_none_and_a_link_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(
            read_state_file(&tmp.path().join("missing.json")).unwrap(),
            None
        );
        // Larger than the first read's buffer: still read to its end.
        let big = "x".repeat(3 * STATE_READ_BUFFER + 17);
        let file = tmp.path().join("big.json");
        fs::write(&file, &big).unwrap();
        assert_eq!(
            read_state_file(&file).unwrap().as_deref(),
            Some(big.as_str())
        );
        // A link in a state file's place is refused, whether it leads to a file or nowhere.
        for (name, target) in [
            ("to-file.json", file.clone()),
            ("dangling.json", tmp.path().join("nothing")),
        ] {
            let link = tmp.path().join(name);
            std::os::unix::fs::symlink(&target, &link).unwrap();
            let e = read_state_file(&link).unwrap_err().to_string();
            assert!(e.contains("symbolic link"), "{name}: {e}");
        }
    }

    #[test]
    fn a_link_is_never_created_through() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        std::os::unix::fs::symlink(&target, tmp.path().join("link")).unwrap();
        assert!(create_dir_exact(&tmp.path().join("link"), 0o700).is_err());
        assert!(!target.exists());
    }

    #[test]
    fn paths_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(
            shell(Path::new("/var/lib/brokercert")),
            "/var/lib/brokercert"
        );
        assert_eq!(shell(Path::new("/tmp/my state")), "'/tmp/my state'");
        assert_eq!(shell(Path::new("/tmp/it's")), r"'/tmp/it'\''s'");
    }
}
