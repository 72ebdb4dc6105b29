//! Facts about the host a broker runs on, for `strand tune` and `strand-bench`.

use std::path::{Path, PathBuf};

/// The block device (`/sys/dev/block/MAJ:MIN`, the whole disk) under `dir`.
pub fn block_device(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let path = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    // A partition's queue settings live on its disk.
    if path.join("partition").exists() {
        path.parent().map(Path::to_path_buf)
    } else {
        Some(path)
    }
}

/// The core that takes most of the interrupts of the disk under `dir`, from
/// `/proc/interrupts`: the disk's device (`virtio1`, `nvme0`) names its IRQs
/// (`virtio1-req.0`, `nvme0q3`). `None` when unknown, or when no core takes most of
/// them (a disk with a queue per core).
pub fn disk_interrupt_core(dir: &Path) -> Option<usize> {
    let device = block_device(dir).and_then(|disk| std::fs::canonicalize(disk.join("device")).ok())?;
    let device = device.file_name()?.to_string_lossy().into_owned();
    busiest_core(&std::fs::read_to_string("/proc/interrupts").ok()?, &device)
}

/// One IRQ of `/proc/interrupts`: its name (the last field) and its count per core.
pub struct Interrupt {
    pub name: String,
    pub counts: Vec<(usize, u64)>,
}

/// The rows of a `/proc/interrupts` table that count per core (not the summary rows
/// such as `ERR:`).
pub fn interrupts(table: &str) -> Vec<Interrupt> {
    let mut lines = table.lines();
    let cpus: Vec<usize> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|c| c.strip_prefix("CPU").and_then(|n| n.parse().ok()))
        .collect();
    lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < cpus.len() + 2 {
                return None;
            }
            let counts = cpus.iter().zip(&fields[1..=cpus.len()]).map(|(&cpu, f)| (cpu, f.parse().unwrap_or(0)));
            Some(Interrupt { name: fields[fields.len() - 1].to_string(), counts: counts.collect() })
        })
        .collect()
}

/// The core holding more than half of the interrupts of the IRQs named `device-…` or
/// `deviceq…` in a `/proc/interrupts` table.
fn busiest_core(table: &str, device: &str) -> Option<usize> {
    let mut per_core: Vec<(usize, u64)> = Vec::new();
    for irq in interrupts(table) {
        if !irq.name.strip_prefix(device).is_some_and(|rest| rest.starts_with(['-', 'q'])) {
            continue;
        }
        for (cpu, count) in irq.counts {
            match per_core.iter_mut().find(|(c, _)| *c == cpu) {
                Some((_, total)) => *total += count,
                None => per_core.push((cpu, count)),
            }
        }
    }
    let total: u64 = per_core.iter().map(|(_, count)| count).sum();
    per_core.into_iter().find(|&(_, count)| count * 2 > total).map(|(cpu, _)| cpu)
}

pub use strand_storage::space::{disk_space, DiskSpace};

/// Raises the soft limit on open descriptors (RLIMIT_NOFILE) to the hard limit and
/// returns the limit now in force. A broker holds one descriptor per segment file and
/// two per connection; the soft limit is often 1,024 while the hard one is far higher.
pub fn raise_descriptor_limit() -> std::io::Result<u64> {
    // SAFETY: getrlimit and setrlimit on a struct we own.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    Ok(limit.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    use super::busiest_core;

    const TABLE: &str = "           CPU0       CPU1       CPU2       CPU3
 35:          0          1          0          0 PCI-MSIX-0000:00:02.0   0-edge      virtio1-config
 36:          0   12915633          3          0 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
 38:   99999999          0          0          0 PCI-MSIX-0000:00:03.0   1-edge      virtio12-input.0
 50:        100        110         90        105 IR-PCI-MSI 524288-edge      nvme0q1
 51:         98        101         99        120 IR-PCI-MSI 524289-edge      nvme0q2
LOC:    9084160    9792008    9084160    9792008   Local timer interrupts
";

    #[test]
    fn the_disks_interrupt_core_is_found_by_its_device_name() {
        assert_eq!(busiest_core(TABLE, "virtio1"), Some(1), "virtio12 is another device");
        assert_eq!(busiest_core(TABLE, "nvme0"), None, "a queue per core: no single interrupt core");
        assert_eq!(busiest_core(TABLE, "sda"), None);
        assert_eq!(busiest_core("", "virtio1"), None);
    }
}
