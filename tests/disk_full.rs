//! A full disk: appends fail with a clear, retriable error, nothing acknowledged is
//! lost, and appends resume by themselves once space returns.
//!
//! The log runs on a small ext4 filesystem in a loop-mounted image, so it needs root
//! (as CI has); run as another user it says so and skips.

mod common;

use bytes::BytesMut;
use common::{strand, Broker};
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

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Fills the disk under `path` with a file until at most `leave` bytes are free.
fn fill(path: &std::path::Path, leave: u64) {
    let free = strand::host::disk_space(path.parent().unwrap()).unwrap().free_bytes;
    let size = free.saturating_sub(leave);
    let file = std::fs::File::create(path).unwrap();
    // Written, not only sized: a sparse file would take no space.
    let chunk = vec![7u8; 1 << 20];
    let mut writer = std::io::BufWriter::new(file);
    for _ in 0..size >> 20 {
        std::io::Write::write_all(&mut writer, &chunk).unwrap();
    }
    std::io::Write::flush(&mut writer).unwrap();
    writer.get_ref().sync_all().unwrap();
}

#[test]
fn a_broker_on_a_small_disk_creates_only_what_it_can_hold_and_answers_disk_full() {
    if !is_root() {
        eprintln!("skipped: mounting a small filesystem needs root");
        return;
    }
    let disk = SmallDisk::new(128);
    let data = disk.mount.join("data");
    let config = disk.mount.join("strand.toml");
    std::fs::write(&config, "[groups]\noffsets_segment_bytes = 1048576\n").unwrap();
    let config = config.to_str().unwrap();
    let broker = Broker::start(&data, &["--cores", "0", "--config", config]);
    let bootstrap = broker.bootstrap();
    let b = ["--bootstrap", bootstrap.as_str()];

    // 100 partitions of 256 MiB segments cannot be reserved on 128 MiB: refused,
    // naming the space, and nothing is created.
    let (ok, _, err) = strand(&[&["topic", "create", "fill", "--partitions", "100"][..], &b].concat(), "");
    assert!(!ok, "created a topic the disk cannot hold");
    assert!(err.contains("DiskFull") && err.contains("storage.disk_reserve_bytes"), "{err}");
    let (ok, out, _) = strand(&[&["topic", "list"][..], &b].concat(), "");
    assert!(ok);
    assert_eq!(out.trim(), "", "nothing was created");

    // What fits is created; produce fills the disk and gets DiskFull, not NotReady.
    let (ok, _, err) = strand(
        &[&["topic", "create", "small", "--partitions", "2", "--config", "segment_bytes=4194304"][..], &b].concat(),
        "",
    );
    assert!(ok, "{err}");
    let filler = disk.mount.join("filler");
    fill(&filler, 40 << 20);
    let client = strand_client::Client::connect(&bootstrap).unwrap();
    let produce = |partition: u32, tag: u64| -> strand_client::ErrorCode {
        use strand_protocol::native::messages::{ProducePartition, ProduceRequest, ProduceTopic};
        use strand_protocol::native::{Request, Response};
        let request = Request::Produce(ProduceRequest {
            acks: 2,
            timeout_ms: 10_000,
            topics: vec![ProduceTopic {
                name: "small".into(),
                partitions: vec![ProducePartition { partition, records: batch(tag).freeze() }],
            }],
        });
        match strand_client::block_on(client.request(request)).unwrap() {
            Response::Produce(response) => response.topics[0].partitions[0].error,
            other => panic!("{other:?}"),
        }
    };
    let mut acknowledged = 0u64;
    let error = loop {
        match produce(0, acknowledged) {
            strand_client::ErrorCode::None => acknowledged += 1,
            error => break error,
        }
        assert!(acknowledged < 2_000, "the disk never filled");
    };
    assert_eq!(error, strand_client::ErrorCode::DiskFull, "after {acknowledged} batches");
    assert!(acknowledged > 10, "{acknowledged} batches before the disk filled");

    // Space returns: produce resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while produce(0, acknowledged) != strand_client::ErrorCode::None {
        assert!(std::time::Instant::now() < deadline, "produce did not resume once space returned");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    acknowledged += 1;

    // A partition that cannot open at start (its segment cannot be reserved) opens
    // by itself once space returns.
    let mut broker = broker;
    assert!(broker.stop());
    // The test topic's directory, not `__consumer_offsets`' (read_dir has no order).
    let partition_dir = std::fs::read_dir(data.join("topics"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| !path.to_string_lossy().ends_with("__consumer_offsets"))
        .unwrap()
        .join("1");
    std::fs::remove_dir_all(&partition_dir).unwrap();
    fill(&filler, 2 << 20);
    let broker = Broker::start(&data, &["--cores", "0", "--config", config]);
    let client = strand_client::Client::connect(&broker.bootstrap()).unwrap();
    let produce_one = |partition: u32| -> strand_client::ErrorCode {
        use strand_protocol::native::messages::{ProducePartition, ProduceRequest, ProduceTopic};
        use strand_protocol::native::{Request, Response};
        let request = Request::Produce(ProduceRequest {
            acks: 1,
            timeout_ms: 10_000,
            topics: vec![ProduceTopic {
                name: "small".into(),
                partitions: vec![ProducePartition { partition, records: batch(0).freeze() }],
            }],
        });
        match strand_client::block_on(client.request(request)).unwrap() {
            Response::Produce(response) => response.topics[0].partitions[0].error,
            other => panic!("{other:?}"),
        }
    };
    assert_ne!(produce_one(1), strand_client::ErrorCode::None, "partition 1 cannot be open on a full disk");
    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while produce_one(1) != strand_client::ErrorCode::None {
        assert!(std::time::Instant::now() < deadline, "partition 1 did not open once space returned");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Partition 0 kept everything acknowledged.
    let end = strand_client::block_on(client.list_offset("small", 0, strand_client::OffsetSpec::Latest)).unwrap();
    assert_eq!(end as u64, acknowledged * 60);
}
