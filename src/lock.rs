//! The data directory's lock: one broker per data directory, for the broker's whole life.
//!
//! Two brokers on one directory would each assign offsets to the same partitions and
//! overwrite each other's segments; after a restart only one of their acknowledged
//! records would be left. `strand serve` therefore takes an exclusive `flock` on
//! `DATA_DIR/strand.lock` before it opens anything else and holds it until it exits.
//! The file keeps the holder's PID so that the broker refused can name it. The kernel
//! drops the lock when the process dies, however it dies, so a `kill -9` leaves no
//! stale lock behind (the file stays; only the lock matters).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "strand.lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("the data directory {dir} is in use by another strand broker ({holder}); stop it, or give this broker another --data-dir")]
    Held { dir: PathBuf, holder: String },
    /// The lock file could not be opened or written.
    #[error("cannot lock the data directory {dir} ({path}: {source})")]
    Io { dir: PathBuf, path: PathBuf, source: std::io::Error },
}

/// An exclusive lock on a data directory, released when dropped (or when the process
/// ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock on `dir` without waiting, and records this process's PID in it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io { dir: dir.to_path_buf(), path: path.clone(), source };
        let mut file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(error));
            }
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("PID {pid}"),
                Err(_) => "PID unknown".to_string(),
            };
            return Err(LockError::Held { dir: dir.to_path_buf(), holder });
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        // flock locks belong to the open file description, so a second open in the
        // same process conflicts just as another process would.
        let error = DataDirLock::acquire(dir.path()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&format!("PID {}", std::process::id())), "{message}");
        assert!(message.contains(&dir.path().display().to_string()), "{message}");
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again once the holder drops it");
    }
}
