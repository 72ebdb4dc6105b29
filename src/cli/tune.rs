//! `strand tune`: what on this host will hurt the broker, why, and the command that
//! fixes it (`--check`, the default); `--apply` writes the drop-ins of `tuning/` and
//! sets what can be set now. Every check degrades to `unknown`, with the reason, where
//! the host does not expose what it needs (containers, VMs).

use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};
use strand::config::{BrokerConfig, Cores};
use strand::host::block_device;

const SYSCTL_DROP_IN: &str = include_str!("../../tuning/60-strand.conf");
const UDEV_DROP_IN: &str = include_str!("../../tuning/60-strand-scheduler.rules");
const SYSCTL_PATH: &str = "/etc/sysctl.d/60-strand.conf";
const UDEV_PATH: &str = "/etc/udev/rules.d/60-strand-scheduler.rules";

#[derive(Args)]
pub struct TuneArgs {
    /// Report only (the default).
    #[arg(long, conflicts_with = "apply")]
    check: bool,
    /// Write the sysctl and udev drop-ins and set what can be set now; idempotent.
    #[arg(long)]
    apply: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The broker's configuration (for the data directory and the shard cores).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The data directory to check (overrides the configuration's).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// What was found.
    pub value: String,
    /// Why it matters, or why it could not be checked.
    pub reason: String,
    /// The command that fixes it (empty when nothing is to fix).
    pub fix: String,
}

fn check(
    name: &'static str,
    status: Status,
    value: impl Into<String>,
    reason: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check { name, status, value: value.into(), reason: reason.into(), fix: fix.into() }
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn io_uring() -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match read("/proc/sys/kernel/io_uring_disabled").as_deref() {
        None => check(
            "kernel.io_uring_disabled",
            Status::Ok,
            "absent",
            "this kernel predates the switch: io_uring is on",
            "",
        ),
        Some("0") => check("kernel.io_uring_disabled", Status::Ok, "0", "io_uring is enabled", ""),
        Some(v) => check(
            "kernel.io_uring_disabled",
            Status::Fail,
            v,
            "io_uring is disabled or restricted; every shard runs on io_uring",
            "sysctl -w kernel.io_uring_disabled=0",
        ),
    });
    // SAFETY: io_uring_setup with a zeroed params struct we own; the fd is closed.
    let fd = unsafe {
        let mut params = [0u8; 120];
        libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr())
    };
    out.push(if fd >= 0 {
        unsafe { libc::close(fd as i32) };
        check("io_uring", Status::Ok, "available", "a ring could be created", "")
    } else {
        let error = std::io::Error::last_os_error();
        check(
            "io_uring",
            Status::Fail,
            error.to_string(),
            "creating a ring failed (seccomp filters, a container runtime's policy, or an old kernel)",
            "allow io_uring_setup/io_uring_enter/io_uring_register in the seccomp profile; Linux 5.10 or later",
        )
    });
    let seccomp = read("/proc/self/status")
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_string())));
    out.push(match seccomp.as_deref() {
        Some("0") => check("seccomp", Status::Ok, "0", "no seccomp filter on this process", ""),
        Some(v) => {
            check("seccomp", Status::Warn, v, "a seccomp filter applies; it must allow the io_uring system calls", "")
        }
        None => check("seccomp", Status::Unknown, "", "/proc/self/status has no Seccomp line", ""),
    });
    out
}

fn limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one struct we own.
    (unsafe { libc::getrlimit(resource, &mut limit) } == 0).then_some(limit.rlim_cur)
}

fn limits(shards: usize) -> Vec<Check> {
    let memlock = limit(libc::RLIMIT_MEMLOCK);
    let want = (shards as u64) * strand::runtime::IO_MEMORY_BYTES_DEFAULT as u64;
    let memlock = match memlock {
        Some(libc::RLIM_INFINITY) => {
            check("memlock", Status::Ok, "unlimited", "io_uring buffers can be registered", "")
        }
        Some(bytes) if bytes < 512 * 1024 => check(
            "memlock",
            Status::Fail,
            format!("{} KiB", bytes / 1024),
            "glommio needs at least 512 KiB of locked memory per process to start",
            "LimitMEMLOCK=infinity in the unit (systemd/strand.service), or ulimit -l unlimited",
        ),
        Some(bytes) if bytes < want => check(
            "memlock",
            Status::Warn,
            format!("{} KiB", bytes / 1024),
            format!("each of {shards} shards would register 8 MiB of I/O buffers; they get a share of the limit"),
            "LimitMEMLOCK=infinity in the unit (systemd/strand.service), or ulimit -l unlimited",
        ),
        Some(bytes) => {
            check("memlock", Status::Ok, format!("{} KiB", bytes / 1024), "enough for every shard's buffers", "")
        }
        None => check("memlock", Status::Unknown, "", "getrlimit failed", ""),
    };
    let files = match limit(libc::RLIMIT_NOFILE) {
        Some(n) if n >= 1 << 20 || n == libc::RLIM_INFINITY => {
            check("nofile", Status::Ok, n.to_string(), "enough descriptors", "")
        }
        Some(n) => check(
            "nofile",
            if n < 65_536 { Status::Warn } else { Status::Ok },
            n.to_string(),
            "each segment, index and client connection holds a descriptor",
            "LimitNOFILE=1048576 in the unit, or ulimit -n 1048576",
        ),
        None => check("nofile", Status::Unknown, "", "getrlimit failed", ""),
    };
    vec![memlock, files]
}

fn cpu(cores: &[usize]) -> Vec<Check> {
    let mut out = Vec::new();
    let governors: Vec<(usize, Option<String>)> =
        cores.iter().map(|c| (*c, read(format!("/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor")))).collect();
    out.push(if governors.iter().all(|(_, g)| g.is_none()) {
        check("cpu governor", Status::Unknown, "", "no cpufreq in /sys (a VM, or frequency fixed by firmware)", "")
    } else {
        let slow: Vec<String> = governors
            .iter()
            .filter(|(_, g)| g.as_deref() != Some("performance"))
            .map(|(c, g)| format!("cpu{c}={}", g.as_deref().unwrap_or("?")))
            .collect();
        if slow.is_empty() {
            check("cpu governor", Status::Ok, "performance", "shard cores run at full speed", "")
        } else {
            check(
                "cpu governor",
                Status::Warn,
                slow.join(","),
                "a shard core that clocks down adds latency to every request it serves",
                "cpupower frequency-set -g performance",
            )
        }
    });
    out.push(match read("/sys/devices/system/clocksource/clocksource0/current_clocksource").as_deref() {
        Some("tsc") => check("clocksource", Status::Ok, "tsc", "clock reads stay in user space", ""),
        Some(v) => check(
            "clocksource",
            Status::Warn,
            v,
            "every timer and latency measurement reads the clock; sources other than tsc cost far more",
            "echo tsc > /sys/devices/system/clocksource/clocksource0/current_clocksource",
        ),
        None => check("clocksource", Status::Unknown, "", "/sys has no clocksource", ""),
    });
    out
}

fn memory() -> Vec<Check> {
    let thp = read("/sys/kernel/mm/transparent_hugepage/enabled");
    let selected = thp.as_deref().and_then(|v| {
        v.split_whitespace().find(|w| w.starts_with('[')).map(|w| w.trim_matches(['[', ']']).to_string())
    });
    let thp = match selected.as_deref() {
        Some("always") => check(
            "transparent hugepages",
            Status::Warn,
            "always",
            "each huge-page fault zeroes 2 MiB at once: measured to stall a shard for milliseconds",
            "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled",
        ),
        Some(v) => check("transparent hugepages", Status::Ok, v, "huge pages only where asked for", ""),
        None => {
            check("transparent hugepages", Status::Unknown, "", "/sys/kernel/mm/transparent_hugepage is absent", "")
        }
    };
    let swappiness = match read("/proc/sys/vm/swappiness").and_then(|v| v.parse::<u32>().ok()) {
        Some(v) if v <= 1 => check("vm.swappiness", Status::Ok, v.to_string(), "the batch cache stays in memory", ""),
        Some(v) => check(
            "vm.swappiness",
            Status::Warn,
            v.to_string(),
            "a swapped-out batch cache turns tail reads into disk reads",
            format!("strand tune --apply (writes {SYSCTL_PATH})"),
        ),
        None => check("vm.swappiness", Status::Unknown, "", "/proc/sys/vm/swappiness is absent", ""),
    };
    let aio = match read("/proc/sys/fs/aio-max-nr").and_then(|v| v.parse::<u64>().ok()) {
        Some(v) if v >= 1 << 20 => {
            check("fs.aio-max-nr", Status::Ok, v.to_string(), "enough asynchronous I/O contexts", "")
        }
        Some(v) => check(
            "fs.aio-max-nr",
            Status::Warn,
            v.to_string(),
            "asynchronous I/O contexts are drawn from this pool (glommio's fallbacks, other tenants)",
            format!("strand tune --apply (writes {SYSCTL_PATH})"),
        ),
        None => check("fs.aio-max-nr", Status::Unknown, "", "/proc/sys/fs/aio-max-nr is absent", ""),
    };
    vec![thp, swappiness, aio]
}

fn disk(dir: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    let device = block_device(dir);
    out.push(match device.as_ref().and_then(|d| read(d.join("queue/scheduler"))) {
        Some(line) => {
            let selected = line
                .split_whitespace()
                .find(|w| w.starts_with('['))
                .unwrap_or("?")
                .trim_matches(['[', ']'])
                .to_string();
            let name = device
                .as_ref()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if selected == "none" {
                check(
                    "io scheduler",
                    Status::Ok,
                    format!("{name}: none"),
                    "direct I/O goes straight to the device queue",
                    "",
                )
            } else {
                check(
                    "io scheduler",
                    Status::Warn,
                    format!("{name}: {selected}"),
                    "a scheduler in front of an NVMe or virtio disk adds latency to every write",
                    format!("echo none > /sys/block/{name}/queue/scheduler; strand tune --apply (writes {UDEV_PATH})"),
                )
            }
        }
        None => check(
            "io scheduler",
            Status::Unknown,
            dir.display().to_string(),
            "the data directory's block device has no queue in /sys (tmpfs, overlay, a container)",
            "",
        ),
    });
    // The mount holding the data directory: the longest mount point that prefixes it.
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mount = read("/proc/self/mountinfo").and_then(|info| {
        info.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let point = *fields.get(4)?;
                let dash = fields.iter().position(|f| *f == "-")?;
                let fstype = *fields.get(dash + 1)?;
                let options = fields.get(5).copied().unwrap_or("");
                canonical.starts_with(point).then(|| (point.to_string(), fstype.to_string(), options.to_string()))
            })
            .max_by_key(|(point, _, _)| point.len())
    });
    out.push(match mount {
        Some((point, fstype, options)) => {
            let supported = matches!(fstype.as_str(), "xfs" | "ext4");
            let atime = !options.split(',').any(|o| o == "noatime" || o == "relatime");
            let status = if !supported || atime { Status::Warn } else { Status::Ok };
            let reason = if !supported {
                format!("{fstype}: Strand's direct I/O is tested on xfs and ext4")
            } else if atime {
                "every read updates access times (mount with noatime)".into()
            } else {
                "direct I/O on a supported filesystem".into()
            };
            let fix =
                if atime { format!("mount -o remount,noatime {point} (and in /etc/fstab)") } else { String::new() };
            check("data filesystem", status, format!("{point} {fstype} {options}"), reason, fix)
        }
        None => check(
            "data filesystem",
            Status::Unknown,
            dir.display().to_string(),
            "/proc/self/mountinfo does not show the mount",
            "",
        ),
    });
    out
}

fn irqs(cores: &[usize], dir: &Path) -> Vec<Check> {
    let running = std::fs::read_dir("/proc")
        .map(|entries| entries.flatten().any(|e| read(e.path().join("comm")).as_deref() == Some("irqbalance")))
        .unwrap_or(false);
    let balance = if running {
        check(
            "irqbalance",
            Status::Warn,
            "running",
            "it moves device interrupts onto shard cores as load shifts",
            "systemctl disable --now irqbalance (then place IRQs away from the shard cores)",
        )
    } else {
        check("irqbalance", Status::Ok, "not running", "interrupt placement stays where it is set", "")
    };
    // Interrupts of the data disk and the network, and on which cores they land.
    let disk_name = block_device(dir).and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    let Some(table) = read("/proc/interrupts") else {
        return vec![balance, check("irq placement", Status::Unknown, "", "/proc/interrupts is not readable", "")];
    };
    let mut on_shards = Vec::new();
    let mut seen = 0;
    for irq in strand::host::interrupts(&table) {
        let name = irq.name.as_str();
        let device = name.contains("virtio")
            || name.contains("nvme")
            || name.contains("eth")
            || name.contains("ens")
            || name.contains("mlx")
            || disk_name.as_deref().is_some_and(|d| name.contains(d));
        if !device {
            continue;
        }
        seen += 1;
        for &(cpu, count) in &irq.counts {
            if count > 1000 && cores.contains(&cpu) {
                on_shards.push(format!("{name}→cpu{cpu}"));
            }
        }
    }
    let placement = if seen == 0 {
        check("irq placement", Status::Unknown, "", "no disk or network interrupts found in /proc/interrupts", "")
    } else if on_shards.is_empty() {
        check("irq placement", Status::Ok, "off the shard cores", "device interrupts land on other cores", "")
    } else {
        check(
            "irq placement",
            Status::Warn,
            on_shards.join(", "),
            "device interrupts preempt the shards on these cores (on a small host that may be unavoidable)",
            "echo CPU-LIST > /proc/irq/N/smp_affinity_list for each device IRQ, outside the shard cores",
        )
    };
    vec![balance, placement]
}

/// Every check, for a broker with `data_dir` and shards on `cores`.
pub fn checks(data_dir: &Path, cores: &[usize]) -> Vec<Check> {
    let mut out = io_uring();
    out.extend(limits(cores.len()));
    out.extend(cpu(cores));
    out.extend(memory());
    out.extend(disk(data_dir));
    out.extend(irqs(cores, data_dir));
    out
}

/// What the broker checks before it serves: io_uring, locked memory, and a data
/// directory it can write with room to spare. A failure names the cause and the fix.
pub fn preflight(data_dir: &Path, shards: usize) -> anyhow::Result<()> {
    for c in io_uring().into_iter().chain(limits(shards)) {
        if c.status == Status::Fail {
            anyhow::bail!("{} is not usable ({}): {}; fix: {}", c.name, c.value, c.reason, c.fix);
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the data directory {}: {e}; fix: create it writable for this user, or set data_dir",
            data_dir.display()
        )
    })?;
    let probe = data_dir.join(".strand-write-probe");
    match std::fs::write(&probe, b"probe") {
        Ok(()) => {}
        // A full disk is no reason not to start: the broker serves what it holds,
        // answers DiskFull to what it cannot store, and resumes once space returns.
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {}
        Err(e) => anyhow::bail!(
            "the data directory {} is not writable: {e}; fix: chown it to the broker's user",
            data_dir.display()
        ),
    }
    let _ = std::fs::remove_file(&probe);
    if let Some(space) = strand::host::disk_space(data_dir) {
        let free = space.free_bytes;
        if free < 4 << 30 {
            tracing::warn!(
                free_mib = free >> 20,
                dir = %data_dir.display(),
                "little free space in the data directory: what cannot be reserved is refused with DiskFull until space returns"
            );
        }
    }
    Ok(())
}

fn online_cpus() -> Vec<usize> {
    // SAFETY: sysconf reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    (0..n).collect()
}

/// Writes `text` to `path` unless it already holds exactly that; returns whether it
/// wrote.
fn write_if_changed(path: &str, text: &str) -> anyhow::Result<bool> {
    if read(path).as_deref() == Some(text.trim()) {
        return Ok(false);
    }
    if let Some(parent) = Path::new(path).parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing {path}: {e} (run as root)"))?;
    Ok(true)
}

fn apply() -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    if write_if_changed(SYSCTL_PATH, SYSCTL_DROP_IN)? {
        done.push(format!("wrote {SYSCTL_PATH}"));
    }
    for line in SYSCTL_DROP_IN.lines().filter(|l| !l.starts_with('#') && l.contains('=')) {
        let (key, value) = line.split_once('=').expect("a key = value line");
        let path = format!("/proc/sys/{}", key.trim().replace('.', "/"));
        if read(&path).as_deref() != Some(value.trim()) && std::fs::write(&path, value.trim()).is_ok() {
            done.push(format!("set {} = {}", key.trim(), value.trim()));
        }
    }
    if write_if_changed(UDEV_PATH, UDEV_DROP_IN)? {
        done.push(format!("wrote {UDEV_PATH} (takes effect at the next udev change event or boot)"));
    }
    let thp = "/sys/kernel/mm/transparent_hugepage/enabled";
    if read(thp).is_some_and(|v| v.contains("[always]")) && std::fs::write(thp, "madvise").is_ok() {
        done.push("set transparent hugepages to madvise".into());
    }
    Ok(done)
}

pub fn run(args: TuneArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => BrokerConfig::load(path)?,
        None => BrokerConfig::default(),
    };
    let data_dir = args.data_dir.clone().unwrap_or(config.data_dir.clone());
    // The data directory may not exist yet: check where it will be created.
    let mut dir = data_dir.as_path();
    while !dir.exists() {
        dir = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    }
    let cores = match &config.cores {
        Cores::List(list) => list.clone(),
        Cores::All => online_cpus(),
    };
    let applied = if args.apply { apply()? } else { Vec::new() };
    let results = checks(dir, &cores);
    if args.json {
        let report = serde_json::json!({ "data_dir": data_dir, "cores": cores, "applied": applied, "checks": results });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for line in &applied {
            println!("applied: {line}");
        }
        for c in &results {
            let status = match c.status {
                Status::Ok => "ok",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
                Status::Unknown => "unknown",
            };
            println!("{status:<8} {:<22} {}: {}", c.name, c.value, c.reason);
            if !c.fix.is_empty() && c.status != Status::Ok {
                println!("{:<31} fix: {}", "", c.fix);
            }
        }
    }
    if results.iter().any(|c| c.status == Status::Fail) {
        anyhow::bail!("a check failed: the broker cannot run here as configured");
    }
    Ok(())
}
