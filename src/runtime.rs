//! Shard executors: glommio `LocalExecutor`s sized to what this host allows.
//!
//! glommio registers `io_memory` bytes of I/O buffers with io_uring per executor, and
//! registered memory counts against RLIMIT_MEMLOCK. Where the limit is lower than what
//! the shards would register, each shard gets an equal share of three quarters of it;
//! buffers beyond the registered pool still work, from the ordinary allocator.

use glommio::{LocalExecutorBuilder, Placement};
use std::future::Future;

/// I/O memory a shard registers when the host sets no lower limit.
pub const IO_MEMORY_BYTES_DEFAULT: usize = 8 * 1024 * 1024;
/// The least a shard registers (glommio's own floor is 64 KiB).
const IO_MEMORY_BYTES_MIN: usize = 64 * 1024;

/// RLIMIT_MEMLOCK in bytes, or `None` when unlimited.
pub fn memlock_limit_bytes() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    if rc != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(limit.rlim_cur)
}

/// I/O memory for each of `shards` executors: `wanted`, capped by this process's
/// share of the memlock limit.
pub fn io_memory_bytes(shards: usize, wanted: usize) -> usize {
    match memlock_limit_bytes() {
        None => wanted,
        Some(limit) => {
            let share = (limit as usize / 4 * 3) / shards.max(1);
            wanted.min(share).max(IO_MEMORY_BYTES_MIN) / 4096 * 4096
        }
    }
}

/// A builder for one shard's executor, pinned to `cpu` when given.
pub fn executor(name: &str, cpu: Option<usize>, io_memory: usize) -> LocalExecutorBuilder {
    let placement = match cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    LocalExecutorBuilder::new(placement)
        .name(name)
        .io_memory(io_memory)
        .preempt_timer(TASK_QUOTA)
        .spin_before_park(SPIN_BEFORE_PARK)
}

/// How long an idle shard polls for work before it parks in the kernel. Parking and
/// being woken costs tens of microseconds on a VM (an idle core halts and needs an
/// interrupt); a short spin keeps request round trips near the network's own
/// (measured here: ApiVersions p50 122 µs parked, 88 µs with this spin).
pub const SPIN_BEFORE_PARK: std::time::Duration = std::time::Duration::from_micros(200);

pub use strand_storage::quota::{yield_after_quota, TASK_QUOTA};

/// Runs `future` to completion on a fresh unpinned executor in a new thread. For
/// tools and tests that need one shard.
pub fn run_local<F, Fut, T>(name: &str, make: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    // Tools and tests may run several of these at once in one process: a small
    // registered pool each keeps them all under the memlock limit.
    let io_memory = io_memory_bytes(8, IO_MEMORY_BYTES_DEFAULT);
    executor(name, None, io_memory)
        .spawn(make)
        .expect("starting a glommio executor (is io_uring available and RLIMIT_MEMLOCK at least 512 KiB?)")
        .join()
        .expect("the executor thread panicked")
}

/// Installs the process's `tracing` subscriber: `RUST_LOG` if set, else
/// `default_filter`. glommio's probe of iopoll support logs a harmless error on every
/// new device; it is filtered out here so that users' logs only carry real errors.
pub fn init_logging(default_filter: &str) {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    let (filter, handle) = reload::Layer::new(EnvFilter::new(log_filter(default_filter)));
    let _ = LOG_FILTER.set(handle);
    let registry = tracing_subscriber::registry().with(filter);
    if crate::systemd::under_systemd() {
        // journald stamps the time and reads the priority from a `<N>` prefix.
        let _ = registry
            .with(fmt::layer().with_writer(std::io::stderr).with_ansi(false).event_format(JournalFormat))
            .try_init();
    } else {
        // Colours only on a terminal: a log redirected to a file stays plain text.
        use std::io::IsTerminal;
        let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let _ = registry.with(fmt::layer().with_writer(std::io::stderr).with_ansi(ansi)).try_init();
    }
}

type FilterHandle = tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// The live log filter, for `set_log_level`.
static LOG_FILTER: std::sync::OnceLock<FilterHandle> = std::sync::OnceLock::new();

/// `RUST_LOG` if set, else `configured`; glommio's reactor noise is always off, and
/// openraft's unless the filter names it: it logs an unreachable voter as an error at
/// every election, which in a cluster is the normal course of a broker down (the
/// quorum's own lines say what matters, and openraft's failures reach it as errors).
fn log_filter(configured: &str) -> String {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| configured.to_string());
    let openraft = if filter.contains("openraft") { "" } else { ",openraft=off" };
    format!("{filter},glommio::reactor=off{openraft}")
}

/// Replaces the log filter of a running process (SIGHUP). `Ok(false)` when `RUST_LOG`
/// is set, which keeps precedence.
pub fn set_log_level(configured: &str) -> Result<bool, String> {
    if std::env::var_os("RUST_LOG").is_some() {
        return Ok(false);
    }
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(configured)).map_err(|e| e.to_string())?;
    let handle = LOG_FILTER.get().ok_or("logging is not initialized")?;
    handle.reload(filter).map_err(|e| e.to_string())?;
    Ok(true)
}

/// One line per event for journald: `<priority>target: message key=value…`, the
/// priority as syslog numbers it (3 error, 4 warning, 6 info, 7 debug).
struct JournalFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JournalFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>{}: ", event.metadata().target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Keeps large allocations in the heap instead of fresh mmaps. glibc serves every
/// allocation above 128 KiB with its own mmap and returns it with munmap, so each
/// produced batch and receive buffer would cost page faults and the kernel zeroing
/// every page (measured: 42% of a shard's time at 1 KiB records). Call once, before
/// any thread starts.
pub fn keep_large_allocations() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; called before other threads run.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
