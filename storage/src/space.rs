//! Free space on the filesystem under a path: what segment preallocation checks
//! against `storage.disk_reserve_bytes`.

use std::path::Path;

/// Free bytes an unprivileged writer may still use on the filesystem under `dir`,
/// and the filesystem's size, from `statvfs`.
pub fn disk_space(dir: &Path) -> Option<DiskSpace> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills a struct we own from a NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let block = stat.f_frsize as u64;
    Some(DiskSpace { free_bytes: stat.f_bavail as u64 * block, total_bytes: stat.f_blocks as u64 * block })
}

/// A filesystem's free and total bytes.
#[derive(Debug, Clone, Copy)]
pub struct DiskSpace {
    pub free_bytes: u64,
    pub total_bytes: u64,
}
