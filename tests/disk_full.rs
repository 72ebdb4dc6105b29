//! A full disk: appends fail with a clear, retriable error, nothing acknowledged is
//! lost, and appends resume by themselves once space returns.
//!
//! The log runs on a small ext4 filesystem in a loop-mounted image, so it needs root
//! (as CI has); run as another user it says so and skips.

use bytes::BytesMut;
use std::path::PathBuf;
use std::process::Command;
use std::rc::Rc;
use strand::runtime::run_local;
use strand::storage::{BatchCache, FsyncPolicy, IoOptions, Log, StorageError, TopicConfig};
use strand_protocol::BatchBuilder;

/// A mounted filesystem image, unmounted when dropped.
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(megabytes: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        std::fs::File::create(&image).unwrap().set_len(megabytes << 20).unwrap();
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        run(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mount));
        SmallDisk { mount, _dir: dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
}

fn batch(tag: u64) -> BytesMut {
    let mut builder = BatchBuilder::new();
    for i in 0..60 {
        let mut value = vec![(tag % 251) as u8; 1024];
        value[..8].copy_from_slice(&tag.to_le_bytes());
        builder.push(Some(format!("k{i}").as_bytes()), Some(&value), &[], 1);
    }
    BytesMut::from(&builder.build()[..])
}

fn config() -> TopicConfig {
    TopicConfig { fsync: FsyncPolicy::Always, segment_bytes: 8 << 20, retention_ms: None, ..TopicConfig::default() }
}

async fn read_count(log: &Rc<Log>) -> u64 {
    let (mut next, mut batches) = (log.offsets().start, 0);
    while next < log.offsets().high_watermark {
        let read = log.read(next, 1 << 20).await.unwrap();
        for chunk in &read.chunks {
            let mut at = 0;
            while at < chunk.len() {
                let header = strand_protocol::batch::validate(&chunk[at..], Default::default()).unwrap();
                at += header.total_bytes();
                batches += 1;
            }
        }
        next = read.next_offset;
    }
    batches
}

#[test]
fn disk_full_fails_appends_cleanly_and_they_resume_when_space_returns() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a small filesystem needs root");
        return;
    }
    let disk = SmallDisk::new(48);
    let mount = disk.mount.clone();
    run_local("disk-full", move || async move {
        // Space to free later.
        let filler = mount.join("filler");
        std::fs::write(&filler, vec![1u8; 12 << 20]).unwrap();
        let dir = mount.join("orders-0");
        let cache = Rc::new(BatchCache::new(1 << 20));
        let (log, _) = Log::open(&dir, "orders-0", config(), IoOptions::default(), cache.clone()).await.unwrap();
        let mut acknowledged = 0u64;
        let error = loop {
            match log.append(batch(acknowledged)).await {
                Ok(appended) => {
                    assert_eq!(appended.base_offset, acknowledged * 60);
                    acknowledged += 1;
                }
                Err(error) => break error,
            }
            assert!(acknowledged < 10_000, "the disk never filled");
        };
        assert!(matches!(error, StorageError::DiskFull { .. }), "{error}");
        assert!(error.is_retriable());
        assert!(error.to_string().contains("disk full"), "{error}");
        // Still full: the same error again, and nothing changed.
        assert!(matches!(log.append(batch(acknowledged)).await, Err(StorageError::DiskFull { .. })));
        assert_eq!(log.offsets().end, acknowledged * 60);
        assert_eq!(read_count(&log).await, acknowledged, "every acknowledged batch readable");

        std::fs::remove_file(&filler).unwrap();
        let resumed = log.append(batch(acknowledged)).await.expect("appends resume once space returns");
        assert_eq!(resumed.base_offset, acknowledged * 60);
        log.close().await.unwrap();

        let (log, recovery) = Log::open(&dir, "orders-0", config(), IoOptions::default(), cache).await.unwrap();
        assert_eq!(recovery.truncation, None);
        assert_eq!(read_count(&log).await, acknowledged + 1, "everything acknowledged survives a restart");
        log.close().await.unwrap();
    });
}
