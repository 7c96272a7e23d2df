//! Files a command creates: a failed command leaves no debris.
//!
//! Two tools, for the two kinds of file a command creates:
//!
//! - [`NewFile`] for a database the command creates in place (`put`, `import`, `bench
//!   --path`): it remembers whether the path existed before the command, and removes the file
//!   again when the command fails, unless told to [`keep`](NewFile::keep) it.
//! - [`Staged`] for an output that must be complete or absent (`export -o`, the `compact`
//!   destination, the `surgery --output` copy): it is written to a temporary file beside the
//!   destination (same directory, so same file system), synced, and renamed over the
//!   destination only when complete. When the command fails or is killed, the destination is
//!   untouched; the temporary file is removed on failure (it is hidden, named `.NAME.*.tmp`, if
//!   a kill leaves it behind).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{io_error, CliError, CliResult};

/// A file the command may be creating; removed on drop unless kept or it existed before.
#[must_use = "the file is removed when this guard is dropped"]
pub struct NewFile {
    path: PathBuf,
    /// Whether to remove the file on drop (it did not exist before, and was not kept).
    remove: bool,
}

impl NewFile {
    /// Notes whether `path` exists now; call before the command creates it.
    pub fn track(path: &Path) -> NewFile {
        NewFile {
            path: path.to_path_buf(),
            remove: std::fs::symlink_metadata(path).is_err(),
        }
    }

    /// Whether the command created the file (it did not exist when tracked).
    pub fn created(&self) -> bool {
        self.remove
    }

    /// Keeps the file: the command succeeded, or committed something worth keeping.
    pub fn keep(&mut self) {
        self.remove = false;
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// An output file being written beside its destination, renamed into place by
/// [`commit`](Staged::commit); removed if dropped before.
pub struct Staged {
    /// Where the finished file goes (a symbolic link resolved).
    dest: PathBuf,
    /// The destination as the user named it, for messages.
    shown: PathBuf,
    /// The temporary file; `None` when writing straight to a device or pipe (`-o /dev/stdout`),
    /// which cannot be renamed over.
    temp: Option<tempfile::NamedTempFile>,
}

impl Staged {
    /// Prepares to write `dest`. An existing character device, FIFO or socket is written
    /// directly (there is nothing to cut off); anything else goes through a temporary file.
    pub fn new(dest: &Path) -> CliResult<Staged> {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let shown = dest.to_path_buf();
        // Through a symbolic link: replace the file it points to, not the link.
        let resolved;
        let dest = match std::fs::symlink_metadata(dest) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(dest) {
                Ok(p) => {
                    resolved = p;
                    resolved.as_path()
                }
                Err(_) => dest,
            },
            _ => dest,
        };
        // An existing file keeps its permissions; a new one gets 0666 less the umask, as with
        // `File::create` (not the temporary file's usual 0600).
        let mut mode = 0o666;
        if let Ok(m) = std::fs::metadata(dest) {
            mode = m.permissions().mode() & 0o7777;
            let t = m.file_type();
            if t.is_char_device() || t.is_fifo() || t.is_socket() {
                return Ok(Staged {
                    dest: dest.to_path_buf(),
                    shown,
                    temp: None,
                });
            }
            if t.is_dir() {
                return Err(CliError::new(format!(
                    "{}: is a directory, not a file",
                    shown.display()
                )));
            }
        }
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "rivet".into());
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempfile_in(&dir)
            .map_err(|e| io_error(&shown, "create", &e))?;
        Ok(Staged {
            dest: dest.to_path_buf(),
            shown,
            temp: Some(temp),
        })
    }

    /// The path to write to (the temporary file, or the destination itself).
    pub fn path(&self) -> &Path {
        match &self.temp {
            Some(t) => t.path(),
            None => &self.dest,
        }
    }

    /// Opens the file to write to.
    pub fn open(&self) -> CliResult<File> {
        match &self.temp {
            Some(t) => t.reopen().map_err(|e| io_error(&self.shown, "open", &e)),
            None => File::create(&self.dest).map_err(|e| io_error(&self.shown, "open", &e)),
        }
    }

    /// Rewrites a message about the temporary file so that it names the destination.
    pub fn blame_dest(&self, e: CliError) -> CliError {
        self.blame(e, &self.shown)
    }

    /// Rewrites a message about the temporary file so that it names `file`.
    pub fn blame(&self, mut e: CliError, file: &Path) -> CliError {
        if let Some(t) = &self.temp {
            let tmp = t.path().display().to_string();
            e.message = e.message.replace(&tmp, &file.display().to_string());
        }
        e
    }

    /// Syncs the finished file and renames it over the destination (failing if `no_clobber`
    /// and the destination appeared meanwhile), then syncs the directory.
    pub fn commit(self, no_clobber: bool) -> CliResult<()> {
        let Some(temp) = self.temp else {
            return Ok(());
        };
        let (dest, shown) = (&self.dest, &self.shown);
        temp.as_file()
            .sync_all()
            .map_err(|e| io_error(shown, "fsync", &e))?;
        let persisted = if no_clobber {
            temp.persist_noclobber(dest)
        } else {
            temp.persist(dest)
        };
        persisted.map_err(|e| io_error(shown, "rename into place", &e.error))?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename durable; a directory that cannot be opened or synced (some file
            // systems refuse) still holds the complete file.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}
