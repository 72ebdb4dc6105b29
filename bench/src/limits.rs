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
