//! Crash safety of the partition log under `fsync = "always"`.
//!
//! A child process appends with eight concurrent appenders and prints each
//! acknowledged batch; it is SIGKILLed at a random moment, 60 times over the same log.
//! After each kill the log is reopened (recovery runs) and checked: every acknowledged
//! batch is there, unchanged, at its offset; every batch returned is valid; offsets are
//! contiguous; and batches recovered once stay recovered in every later round.
//!
//! The child is this test binary run again with `--exact crash_child --ignored` and
//! `STRAND_CRASH_DIR` set.

use bytes::BytesMut;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};
use strand::runtime::run_local;
use strand::storage::{BatchCache, FsyncPolicy, IoOptions, Log, TopicConfig};
use strand_protocol::batch::{self, BatchLimits};
use strand_protocol::{BatchBuilder, RecordIter};

const ROUNDS: u64 = 60;
const APPENDERS: u64 = 8;

fn config() -> TopicConfig {
    TopicConfig { fsync: FsyncPolicy::Always, segment_bytes: 256 * 1024, retention_ms: None, ..TopicConfig::default() }
}

/// A batch whose first record's value starts with `tag`, so it can be recognized.
fn tagged_batch(tag: u64, rng: &mut impl Rng) -> BytesMut {
    let mut builder = BatchBuilder::new();
    for i in 0..rng.gen_range(1..=10) {
        let mut value = vec![0u8; rng.gen_range(16..3000)];
        rng.fill(&mut value[..]);
        value[..8].copy_from_slice(&tag.to_le_bytes());
        builder.push(Some(format!("key-{i}").as_bytes()), Some(&value), &[], 1_700_000_000_000);
    }
    BytesMut::from(&builder.build()[..])
}

fn tag_of(stored: &[u8]) -> u64 {
    let first = RecordIter::new(stored).unwrap().next().unwrap().unwrap();
    u64::from_le_bytes(first.value.unwrap()[..8].try_into().unwrap())
}

#[test]
#[ignore = "the child process of crash_recovery_keeps_every_acknowledged_batch"]
fn crash_child() {
    let Ok(dir) = std::env::var("STRAND_CRASH_DIR") else {
        eprintln!("crash_child only runs as the child of crash_recovery_keeps_every_acknowledged_batch");
        return;
    };
    let round: u64 = std::env::var("STRAND_CRASH_ROUND").unwrap().parse().unwrap();
    run_local("crash-child", move || async move {
        let cache = Rc::new(BatchCache::new(8 << 20));
        let (log, _) = Log::open(Path::new(&dir), "crash-0", config(), IoOptions::default(), cache).await.unwrap();
        let tasks: Vec<_> = (0..APPENDERS)
            .map(|appender| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(round * 1000 + appender);
                    for seq in 0.. {
                        let tag = (round << 40) | (appender << 32) | seq;
                        let appended = log.append(tagged_batch(tag, &mut rng)).await.unwrap();
                        println!("ACK {} {} {tag}", appended.base_offset, appended.last_offset);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
    });
}

/// Every batch in the log at `dir`, by base offset: (last offset, tag).
fn reopen_and_read(dir: &Path) -> BTreeMap<u64, (u64, u64)> {
    let dir = dir.to_path_buf();
    run_local("crash-check", move || async move {
        let cache = Rc::new(BatchCache::new(0));
        let (log, _) = Log::open(&dir, "crash-0", config(), IoOptions::default(), cache).await.unwrap();
        let offsets = log.offsets();
        assert_eq!(offsets.high_watermark, offsets.end, "recovered data is durable");
        let mut batches = BTreeMap::new();
        let mut next = offsets.start;
        while next < offsets.end {
            let read = log.read(next, 1 << 20).await.unwrap();
            assert!(!read.chunks.is_empty(), "a gap at offset {next}");
            for chunk in &read.chunks {
                let mut at = 0;
                while at < chunk.len() {
                    let header =
                        batch::validate(&chunk[at..], BatchLimits::default()).expect("every batch returned is valid");
                    assert_eq!(header.base_offset as u64, next, "offsets are contiguous");
                    let stored = &chunk[at..at + header.total_bytes()];
                    batches.insert(next, (header.last_offset() as u64, tag_of(stored)));
                    next = header.next_offset() as u64;
                    at += header.total_bytes();
                }
            }
        }
        log.close().await.unwrap();
        batches
    })
}

#[test]
fn crash_recovery_keeps_every_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut acknowledged: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut recovered_before: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("STRAND_CRASH_DIR", dir.path())
            .env("STRAND_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let fields: Vec<&str> = line.split_whitespace().collect();
                if let ["ACK", base, last, tag] = fields[..] {
                    acks.push((
                        base.parse::<u64>().unwrap(),
                        last.parse::<u64>().unwrap(),
                        tag.parse::<u64>().unwrap(),
                    ));
                }
            }
            acks
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..250)));
        child.kill().unwrap();
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        for (base, last, tag) in acks {
            acknowledged.insert(base, (last, tag));
        }

        let present = reopen_and_read(dir.path());
        for (base, (last, tag)) in &acknowledged {
            assert_eq!(present.get(base), Some(&(*last, *tag)), "round {round}: acknowledged batch at {base} lost");
        }
        for (base, batch) in &recovered_before {
            assert_eq!(present.get(base), Some(batch), "round {round}: batch at {base} recovered earlier is gone");
        }
        recovered_before = present;
        assert!(started.elapsed() < Duration::from_secs(300), "the crash test is bounded in time");
    }
    assert!(acknowledged.len() > ROUNDS as usize * 10, "the children acknowledged {} batches", acknowledged.len());
    eprintln!("{ROUNDS} kills, {} acknowledged batches, {} batches stored", acknowledged.len(), recovered_before.len());
}
