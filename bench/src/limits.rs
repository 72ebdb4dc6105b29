//! The machine's own limits, measured the way Strand uses the hardware: direct
//! sequential writes and reads in 1 MiB operations with a few in flight, and the rate
//! of small write + fdatasync pairs. Every Strand figure is reported as a share of one
//! of these, measured in the same run.

use glommio::io::{DmaFile, OpenOptions};
use serde::Serialize;
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A measured rate.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
    pub bytes: u64,
    pub operations: u64,
    pub seconds: f64,
}

impl Rate {
    /// Bytes per second.
    pub fn bytes_per_s(&self) -> f64 {
        self.bytes as f64 / self.seconds
    }
    /// Operations per second.
    pub fn ops_per_s(&self) -> f64 {
        self.operations as f64 / self.seconds
    }
}

fn io(error: glommio::GlommioError<()>) -> std::io::Error {
    error.into()
}

async fn open(path: &Path) -> anyhow::Result<Rc<DmaFile>> {
    let file = OpenOptions::new().read(true).write(true).create(true).dma_open(path).await.map_err(io)?;
    Ok(Rc::new(file))
}

/// Writes `bytes` sequentially to a new file preallocated to that size, in
/// `op_bytes` direct writes with `in_flight` outstanding, then fdatasyncs once. The
/// file is kept for [`direct_read`].
pub async fn direct_write(path: &Path, bytes: u64, op_bytes: usize, in_flight: usize) -> anyhow::Result<Rate> {
    let file = open(path).await?;
    file.truncate(0).await.map_err(io)?;
    file.pre_allocate(bytes, false).await.map_err(io)?;
    let started = Instant::now();
    let mut pending = VecDeque::new();
    let mut pos = 0;
    while pos < bytes {
        if pending.len() >= in_flight {
            let task: glommio::task::JoinHandle<_> = pending.pop_front().unwrap();
            task.await.ok_or_else(|| anyhow::anyhow!("write task cancelled"))??;
        }
        let mut buf = file.alloc_dma_buffer(op_bytes);
        buf.as_bytes_mut().fill(0x5a);
        let writer = file.clone();
        let at = pos;
        pending.push_back(
            glommio::spawn_local(async move { writer.write_at(buf, at).await.map(|_| ()).map_err(io) }).detach(),
        );
        pos += op_bytes as u64;
    }
    for task in pending {
        task.await.ok_or_else(|| anyhow::anyhow!("write task cancelled"))??;
    }
    file.fdatasync().await.map_err(io)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Rate { bytes: pos, operations: pos / op_bytes as u64, seconds })
}

/// Reads the first `len` bytes of the file at `path` (the whole file if `None`)
/// sequentially, `op_bytes` at a time with `in_flight` outstanding.
pub async fn direct_read(path: &Path, len: Option<u64>, op_bytes: usize, in_flight: usize) -> anyhow::Result<Rate> {
    let file = open(path).await?;
    let file_size = file.file_size().await.map_err(io)?;
    let size = len.map_or(file_size, |len| len.min(file_size));
    let started = Instant::now();
    let mut pending = VecDeque::new();
    let mut pos = 0;
    let mut total = 0u64;
    while pos < size {
        if pending.len() >= in_flight {
            let task: glommio::task::JoinHandle<_> = pending.pop_front().unwrap();
            total += task.await.ok_or_else(|| anyhow::anyhow!("read task cancelled"))?? as u64;
        }
        let reader = file.clone();
        let at = pos;
        pending.push_back(
            glommio::spawn_local(async move {
                reader.read_at_aligned(at, op_bytes).await.map(|r| r.len().min((size - at) as usize)).map_err(io)
            })
            .detach(),
        );
        pos += op_bytes as u64;
    }
    for task in pending {
        total += task.await.ok_or_else(|| anyhow::anyhow!("read task cancelled"))?? as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Rate { bytes: total, operations: size.div_ceil(op_bytes as u64), seconds })
}

/// One direct write of `op_bytes` followed by one fdatasync, repeated for
/// `duration`, on a preallocated file: the rate of acknowledgements a log that
/// fdatasyncs every append could give.
pub async fn fdatasync_per_write(path: &Path, op_bytes: usize, duration: Duration) -> anyhow::Result<Rate> {
    let file = open(path).await?;
    file.truncate(0).await.map_err(io)?;
    let reserve = 256 * 1024 * 1024;
    file.pre_allocate(reserve, false).await.map_err(io)?;
    let started = Instant::now();
    let mut pos = 0u64;
    let mut operations = 0u64;
    while started.elapsed() < duration {
        let mut buf = file.alloc_dma_buffer(op_bytes);
        buf.as_bytes_mut().fill(0x5a);
        file.write_at(buf, pos).await.map_err(io)?;
        file.fdatasync().await.map_err(io)?;
        operations += 1;
        pos = (pos + op_bytes as u64) % reserve;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Rate { bytes: operations * op_bytes as u64, operations, seconds })
}

/// Pins the calling thread to `cpu`.
pub fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET and sched_setaffinity only touch it and
    // the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends `bytes` over one loopback TCP connection, from a thread on `sender_cpu` to
/// one on `receiver_cpu`, in `op_bytes` writes and reads: the most one connection
/// between two cores of this machine carries.
pub fn loopback_tcp(
    bytes: u64,
    op_bytes: usize,
    sender_cpu: Option<usize>,
    receiver_cpu: Option<usize>,
) -> anyhow::Result<Rate> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let receiver = std::thread::spawn(move || -> anyhow::Result<Rate> {
        if let Some(cpu) = receiver_cpu {
            pin_to(cpu)?;
        }
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; op_bytes];
        let (mut received, mut operations) = (0u64, 0u64);
        let started = Instant::now();
        while received < bytes {
            let n = stream.read(&mut buf)?;
            anyhow::ensure!(n > 0, "the sender closed after {received} of {bytes} bytes");
            received += n as u64;
            operations += 1;
        }
        Ok(Rate { bytes: received, operations, seconds: started.elapsed().as_secs_f64() })
    });
    // The sender gets its own thread too, so the caller's affinity stays as it was.
    let sender = std::thread::spawn(move || -> anyhow::Result<()> {
        if let Some(cpu) = sender_cpu {
            pin_to(cpu)?;
        }
        let mut stream = std::net::TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        let buf = vec![0x5au8; op_bytes];
        let mut sent = 0u64;
        while sent < bytes {
            let n = (bytes - sent).min(op_bytes as u64) as usize;
            stream.write_all(&buf[..n])?;
            sent += n as u64;
        }
        Ok(())
    });
    sender.join().map_err(|_| anyhow::anyhow!("the sending thread panicked"))??;
    receiver.join().map_err(|_| anyhow::anyhow!("the receiving thread panicked"))?
}

/// One measured limit of the machine.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LimitRow {
    /// What was measured, as printed.
    pub name: String,
    /// `write`, `read`, `fdatasync` or `tcp`: which Strand figures it bounds.
    pub kind: String,
    pub bytes_per_s: f64,
    /// For `hiccup` rows: gaps longer than 1 ms per second.
    pub ops_per_s: f64,
    /// For `hiccup` rows: the longest gap, µs.
    #[serde(default)]
    pub max_us: Option<f64>,
}

/// What a spinning thread pinned to one core sees of the machine's own scheduling:
/// the gaps between two consecutive clock reads, which are time the core ran
/// something else (interrupts, the hypervisor). No latency measured on that core can
/// beat them; they are the floor under every tail percentile.
pub fn hiccups(cpu: usize, duration: Duration) -> anyhow::Result<LimitRow> {
    pin_to(cpu)?;
    let started = Instant::now();
    let mut last = started;
    let (mut over_1ms, mut max) = (0u64, Duration::ZERO);
    while started.elapsed() < duration {
        let now = Instant::now();
        let gap = now - last;
        last = now;
        if gap > Duration::from_millis(1) {
            over_1ms += 1;
        }
        max = max.max(gap);
    }
    Ok(LimitRow {
        name: format!("scheduling hiccups, core {cpu} (gaps in a spin loop)"),
        kind: "hiccup".into(),
        bytes_per_s: 0.0,
        ops_per_s: over_1ms as f64 / started.elapsed().as_secs_f64(),
        max_us: Some(max.as_secs_f64() * 1e6),
    })
}

/// Measures every limit: direct write and reads of `bytes` in `dir`, write +
/// fdatasync pairs for 3 s, and one loopback TCP connection from `cpus[0]` to
/// `cpus[1]`. The disk measurements run on a shard pinned to `cpus[0]`.
pub fn measure(dir: &Path, bytes: u64, cpus: [usize; 2]) -> anyhow::Result<Vec<LimitRow>> {
    anyhow::ensure!(bytes >= 64 << 20, "{bytes} bytes: at least 64 MiB, to measure more than caches");
    std::fs::create_dir_all(dir).map_err(|error| anyhow::anyhow!("cannot create {}: {error}", dir.display()))?;
    let io_memory = strand::runtime::io_memory_bytes(1, strand::runtime::IO_MEMORY_BYTES_DEFAULT);
    let disk_dir = dir.to_path_buf();
    let row = |name: &str, kind: &str, rate: Rate| LimitRow {
        name: name.to_string(),
        kind: kind.to_string(),
        bytes_per_s: rate.bytes_per_s(),
        ops_per_s: rate.ops_per_s(),
        max_us: None,
    };
    let mut rows: Vec<LimitRow> = strand::runtime::executor("limits", Some(cpus[0]), io_memory)
        .spawn(move || async move {
            strand::storage::probe_device(&disk_dir).await?;
            let path = disk_dir.join("limits.dat");
            let write = direct_write(&path, bytes, 1 << 20, 4).await?;
            let read_1 = direct_read(&path, None, 1 << 20, 1).await?;
            let read_4 = direct_read(&path, None, 1 << 20, 4).await?;
            let read_32 = direct_read(&path, None, 32 << 20, 1).await?;
            let sync = fdatasync_per_write(&path, 64 * 1024, Duration::from_secs(3)).await?;
            std::fs::remove_file(&path)?;
            anyhow::Ok(vec![
                row("direct sequential write, 1 MiB x 4 in flight", "write", write),
                row("direct sequential read, 1 MiB x 1 in flight", "read", read_1),
                row("direct sequential read, 1 MiB x 4 in flight", "read", read_4),
                row("direct sequential read, 32 MiB x 1 in flight", "read", read_32),
                row("64 KiB direct write + fdatasync, preallocated file", "fdatasync", sync),
            ])
        })
        .map_err(|e| anyhow::anyhow!("starting the measuring shard: {e}"))?
        .join()
        .map_err(|e| anyhow::anyhow!("the measuring shard failed: {e:?}"))??;
    let tcp = loopback_tcp(bytes, 1 << 20, Some(cpus[0]), Some(cpus[1]))?;
    rows.push(row(&format!("loopback TCP, one connection, core {} to core {}", cpus[0], cpus[1]), "tcp", tcp));
    // Both cores at once, as a broker and a generator run.
    let mut cores: Vec<usize> = cpus.to_vec();
    cores.dedup();
    let threads: Vec<_> =
        cores.into_iter().map(|cpu| std::thread::spawn(move || hiccups(cpu, Duration::from_secs(3)))).collect();
    for thread in threads {
        rows.push(thread.join().map_err(|_| anyhow::anyhow!("the hiccup thread panicked"))??);
    }
    Ok(rows)
}

/// Prints `rows` as `strand-bench limits` does.
pub fn print(rows: &[LimitRow]) {
    for row in rows {
        match row.max_us {
            Some(max_us) => {
                println!("{:<52} max {:>6.2} ms {:>6.1} /s over 1 ms", row.name, max_us / 1e3, row.ops_per_s)
            }
            None => println!("{:<52} {:>8.3} GB/s {:>10.0} ops/s", row.name, row.bytes_per_s / 1e9, row.ops_per_s),
        }
    }
}

/// The best measured rate of `kind`, with its row's name.
pub fn best(rows: &[LimitRow], kind: &str) -> Option<(String, f64)> {
    rows.iter()
        .filter(|row| row.kind == kind)
        .max_by(|a, b| a.bytes_per_s.total_cmp(&b.bytes_per_s))
        .map(|row| (row.name.clone(), row.bytes_per_s))
}
