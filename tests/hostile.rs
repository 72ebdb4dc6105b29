//! What a careless user or an attacker tries against the real broker binary: each test
//! reproduces one way a single client, request or command used to lose data or harm
//! the broker, and checks that it no longer can.

mod common;

use common::{frame, send_raw, strand, Broker};
use std::time::{Duration, Instant};
use strand_client::{block_on, BatchBuilder, Client, Compression, ErrorCode, OffsetSpec};
use strand_protocol::native::messages::{ApiVersionsRequest, ProducePartition, ProduceRequest, ProduceTopic};
use strand_protocol::native::{ApiKey, Request, Response};

#[test]
fn a_second_broker_on_the_same_data_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Broker::start(&data, &["--cores", "0"]);
    let bootstrap = first.bootstrap();
    let (ok, _, err) = strand(&["topic", "create", "t", "--partitions", "2", "--bootstrap", &bootstrap], "");
    assert!(ok, "{err}");

    // `strand` waits for it (bounded): a broker that kept running would fail the test.
    let (ok, _, stderr) = strand(&["serve", "--port", "0", "--data-dir", data.to_str().unwrap()], "");
    assert!(!ok, "the second broker exited 0");
    let data = std::fs::canonicalize(&data).unwrap();
    assert!(stderr.contains(&data.display().to_string()), "names the directory: {stderr}");
    assert!(stderr.contains(&format!("PID {}", first.pid())), "names the holder: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    // The first broker is untouched and serves on.
    let (ok, _, err) = strand(&["produce", "t", "--partition", "1", "--bootstrap", &bootstrap], "kept\n");
    assert!(ok, "{err}");
    let (ok, out, err) = strand(&["consume", "t", "--partition", "1", "--bootstrap", &bootstrap], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "kept");

    // A broker killed with SIGKILL leaves no lock behind: the kernel releases it.
    first.kill();
    let second = Broker::start(&data, &["--cores", "0"]);
    let (ok, out, err) = strand(&["consume", "t", "--partition", "1", "--bootstrap", &second.bootstrap()], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "kept");
}

/// A Produce of `records` (one or more raw batches) to partition 0 of `topic`.
fn produce_raw(client: &Client, topic: &str, records: Vec<u8>) -> ErrorCode {
    produce_with_acks(client, topic, records, 2)
}

fn produce_with_acks(client: &Client, topic: &str, records: Vec<u8>, acks: u8) -> ErrorCode {
    let request = Request::Produce(ProduceRequest {
        acks,
        timeout_ms: 5_000,
        topics: vec![ProduceTopic {
            name: topic.into(),
            partitions: vec![ProducePartition { partition: 0, records: records.into() }],
        }],
    });
    let Response::Produce(response) = block_on(client.request(request)).unwrap() else { panic!("a produce response") };
    response.topics[0].partitions[0].error
}

/// A batch with `codec` in its attributes, `body` as its compressed records, a header
/// that agrees with itself (`record_count` records) and a correct CRC: only the
/// records inside can show it is wrong.
fn forged(codec: Compression, record_count: i32, body: &[u8]) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    builder.push(None, Some(b"x"), &[], 1_700_000_000_000);
    let mut batch = builder.build()[..61].to_vec();
    batch.extend_from_slice(body);
    let length = (batch.len() - 12) as u32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch[21..23].copy_from_slice(&codec.attribute().to_be_bytes());
    batch[23..27].copy_from_slice(&(record_count - 1).to_be_bytes());
    batch[57..61].copy_from_slice(&record_count.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[test]
fn compressed_batches_are_checked_record_by_record_and_every_codec_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--cores", "0"]);
    let bootstrap = broker.bootstrap();
    let b = ["--bootstrap", bootstrap.as_str()];
    let (ok, _, err) = strand(&[&["topic", "create", "z", "--partitions", "1"][..], &b].concat(), "");
    assert!(ok, "{err}");
    let (ok, _, err) = strand(&[&["produce", "z"][..], &b].concat(), "before\n");
    assert!(ok, "{err}");

    let client = Client::connect(&bootstrap).unwrap();
    let end = || block_on(client.list_offset("z", 0, OffsetSpec::Latest)).unwrap();
    assert_eq!(end(), 1);
    let codecs = [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    for codec in codecs {
        // Garbage behind a correct CRC: refused, the log unchanged.
        assert_eq!(produce_raw(&client, "z", forged(codec, 1, &[0x5a; 300])), ErrorCode::InvalidBatch, "{codec:?}");
        // Valid compression, a record count of 2^31 - 1 over three records: the walk
        // refuses it (it once wrapped the index's 32-bit relative offsets).
        let mut three = BatchBuilder::with_compression(codec);
        for value in [b"1", b"2", b"3"] {
            three.push(None, Some(value), &[], 1_700_000_000_000);
        }
        let three = three.build();
        let claim = forged(codec, i32::MAX, &three[61..]);
        assert_eq!(produce_raw(&client, "z", claim), ErrorCode::InvalidBatch, "{codec:?}");
        // A bomb: 64 MiB of zeros, compressed under 1 MiB (the batch limit), past
        // 32 x batch_bytes_max once decompressed. Snappy cannot shrink 64 MiB that far.
        if codec != Compression::Snappy {
            let bomb = forged(codec, 1, &strand_protocol::compression::compress(codec, &vec![0u8; 64 << 20]));
            assert!(bomb.len() < 1 << 20, "{codec:?}: {}", bomb.len());
            assert_eq!(produce_raw(&client, "z", bomb), ErrorCode::InvalidBatch, "{codec:?}");
        }
        assert_eq!(end(), 1, "{codec:?}: nothing was appended");
    }
    // The record before is still readable.
    let (ok, out, err) = strand(&[&["consume", "z"][..], &b].concat(), "");
    assert!(ok, "{err}");
    assert_eq!(out, "before\n");

    // Every codec produced by the CLI reads back through the CLI.
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let input: String = (0..200).map(|i| format!("{codec} {i}\n")).collect();
        let (ok, _, err) = strand(&[&["produce", "z", "--compression", codec][..], &b].concat(), &input);
        assert!(ok, "{codec}: {err}");
    }
    let (ok, out, err) = strand(&[&["consume", "z"][..], &b].concat(), "");
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 801, "{err}");
    assert_eq!(lines[0], "before");
    assert_eq!(lines[1], "gzip 0");
    assert_eq!(lines[800], "zstd 199");
    // Offsets are contiguous across the compressed batches.
    assert_eq!(end(), 801);
}

#[test]
fn requests_that_break_the_protocol_get_the_errors_the_spec_defines() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--cores", "0"]);
    let bootstrap = broker.bootstrap();
    let (ok, _, err) = strand(&["topic", "create", "p", "--partitions", "1", "--bootstrap", &bootstrap], "");
    assert!(ok, "{err}");
    let client = Client::connect(&bootstrap).unwrap();
    let end = || block_on(client.list_offset("p", 0, OffsetSpec::Latest)).unwrap();

    // Any flag on a request: an error frame (MalformedRequest), closed, with a reason
    // in the log.
    for flags in [0x01u8, 0x02, 0x04, 0x80] {
        let answer = send_raw(broker.port, &frame(0, flags, &[]), false).expect("answered and closed");
        assert!(answer.len() >= 18, "flags {flags:#04x}: an error frame: {answer:?}");
        assert_eq!(answer[7], 0x03, "flags {flags:#04x}: response | error");
        assert_eq!(u16::from_le_bytes(answer[16..18].try_into().unwrap()), 1, "flags {flags:#04x}: MalformedRequest");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !broker.stderr().contains("a request has every flag bit 0") {
        assert!(Instant::now() < deadline, "no logged reason: {}", broker.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }

    let batch = || {
        let mut builder = BatchBuilder::new();
        builder.push(None, Some(b"v"), &[], 1_700_000_000_000);
        builder.build()
    };
    // acks outside 0, 1, 2: InvalidAcks, nothing appended, the connection stays.
    assert_eq!(produce_with_acks(&client, "p", batch(), 7), ErrorCode::InvalidAcks);
    assert_eq!(end(), 0);
    // Transactional (bit 4) and control (bit 5) batches: InvalidBatch until
    // transactions exist.
    for bit in [0x10u16, 0x20] {
        let mut forged = batch();
        let attributes = u16::from_be_bytes([forged[21], forged[22]]) | bit;
        forged[21..23].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&forged[21..]);
        forged[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(produce_raw(&client, "p", forged), ErrorCode::InvalidBatch, "attribute {bit:#x}");
    }
    assert_eq!(end(), 0);
    assert_eq!(produce_raw(&client, "p", batch()), ErrorCode::None);
    assert_eq!(end(), 1);

    // SPEC.md's api key table is what the broker advertises, key for key.
    let Response::ApiVersions(versions) =
        block_on(client.request(Request::ApiVersions(ApiVersionsRequest {}))).unwrap()
    else {
        panic!("an ApiVersions response")
    };
    let advertised: Vec<(u16, String)> = versions
        .apis
        .iter()
        .map(|api| (api.api_key, format!("{:?}", ApiKey::from_key(api.api_key).unwrap())))
        .collect();
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol/SPEC.md")).unwrap();
    let table: Vec<(u16, String)> = spec
        .lines()
        .skip_while(|line| !line.starts_with("| api_key | request |"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells[1].parse().unwrap(), cells[2].to_string())
        })
        .collect();
    assert_eq!(table, advertised, "SPEC.md's api key table against ApiVersions");
}

#[test]
fn following_and_group_consumers_wait_for_a_stopped_broker_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_ports(1);
    let config = dir.path().join("strand.toml");
    std::fs::write(&config, "[groups]\ninitial_rebalance_delay_ms = 0\n").unwrap();
    let config = config.to_str().unwrap();
    let mut broker = Broker::start_on_port(&data, port, &["--cores", "0", "--config", config]);
    let bootstrap = broker.bootstrap();
    let b = ["--bootstrap", bootstrap.as_str()];
    let (ok, _, err) = strand(&[&["topic", "create", "f", "--partitions", "2"][..], &b].concat(), "");
    assert!(ok, "{err}");
    let first: String = (0..10).map(|i| format!("r{i}\n")).collect();
    let (ok, _, err) = strand(&[&["produce", "f"][..], &b].concat(), &first);
    assert!(ok, "{err}");

    let mut follow = common::Running::start(&[&["consume", "f", "--follow"][..], &b].concat());
    let mut group =
        common::Running::start(&[&["consume", "f", "--group", "g", "--session-timeout-ms", "2000"][..], &b].concat());
    let mut bounded = common::Running::start(&[&["consume", "f", "--follow", "--timeout-ms", "1500"][..], &b].concat());
    let count = |running: &common::Running| running.lines.lock().unwrap().len();
    common::wait_for("three consumers read the first 10", Duration::from_secs(30), || {
        count(&follow) == 10 && count(&group) >= 10 && count(&bounded) == 10
    });

    assert!(broker.stop(), "the broker stopped cleanly");
    // They wait, saying so once, instead of exiting at once.
    common::wait_for("each says it is retrying", Duration::from_secs(20), || {
        [&follow, &group].iter().all(|r| r.stderr.lock().unwrap().contains("retrying until the broker"))
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(follow.exited().is_none(), "consume --follow exited: {}", follow.stderr.lock().unwrap());
    assert!(group.exited().is_none(), "consume --group exited: {}", group.stderr.lock().unwrap());
    for running in [&follow, &group] {
        let stderr = running.stderr.lock().unwrap();
        assert_eq!(stderr.matches("retrying until").count(), 1, "said once: {stderr}");
    }
    // The bounded one gives up after its timeout, with a non-zero exit.
    let status = bounded.exited().expect("--timeout-ms 1500 gave up");
    assert!(!status.success());
    assert!(bounded.stderr.lock().unwrap().contains("--timeout-ms"), "{}", bounded.stderr.lock().unwrap());

    // The broker is back: both resume from their positions.
    let broker = Broker::start_on_port(&data, port, &["--cores", "0", "--config", config]);
    let second: String = (10..20).map(|i| format!("r{i}\n")).collect();
    let (ok, _, err) = strand(&[&["produce", "f", "--bootstrap", &broker.bootstrap()][..]].concat(), &second);
    assert!(ok, "{err}");
    let all: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
    common::wait_for("both consumers read all 20", Duration::from_secs(60), || {
        let seen = |r: &common::Running| {
            let lines = r.lines.lock().unwrap();
            all.iter().all(|v| lines.contains(v))
        };
        seen(&follow) && seen(&group)
    });
    let mut lines = follow.lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 20, "--follow kept its position: nothing read twice");
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), 20);
    assert!(follow.stderr.lock().unwrap().contains("is back"), "{}", follow.stderr.lock().unwrap());
    group.stop();
    follow.stop();
}

#[test]
fn when_descriptors_run_short_connections_are_refused_first_and_topics_are_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strand.toml");
    std::fs::write(&config, "[limits]\ndescriptors_reserved = 100\n").unwrap();
    let broker = Broker::start_with_nofile(
        &dir.path().join("data"),
        600,
        &["--cores", "0", "--config", config.to_str().unwrap()],
    );
    let bootstrap = broker.bootstrap();
    let b = ["--bootstrap", bootstrap.as_str()];
    assert!(broker.stderr().contains("RLIMIT_NOFILE is 600"), "a warning naming the numbers: {}", broker.stderr());

    // A flood of idle connections: past the reserve they are refused (closed at once).
    let mut held = Vec::new();
    for _ in 0..400 {
        let stream = std::net::TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        held.push(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    // A refused connection reads end of file (or a reset); a held one times out.
    let closed = held
        .iter_mut()
        .filter(|stream| match std::io::Read::read(&mut &**stream, &mut [0u8; 1]) {
            Ok(_) => true,
            Err(error) => !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        })
        .count();
    assert!(closed >= 100, "{closed} of 400 connections refused");
    assert!(closed < 400, "some connections were accepted");
    let descriptors = std::fs::read_dir(format!("/proc/{}/fd", broker.pid())).unwrap().count();
    assert!(descriptors <= 600 - 50, "the broker holds {descriptors} of 600 descriptors");
    held.drain(..40);
    std::thread::sleep(Duration::from_millis(200));

    // The reserve is there for the logs. Forty connections go, so that the CLI can
    // connect while the rest stay: a small topic is created and takes records.
    let (ok, _, err) = strand(&[&["topic", "create", "more", "--partitions", "5"][..], &b].concat(), "");
    assert!(ok, "{err}");
    let (ok, _, err) = strand(&[&["produce", "more", "--partition", "4"][..], &b].concat(), "x\n");
    assert!(ok, "{err}");
    // One that needs more than is left is refused whole, naming descriptors.
    let (ok, _, err) = strand(&[&["topic", "create", "lots", "--partitions", "80"][..], &b].concat(), "");
    assert!(!ok, "created a topic with no descriptors for it");
    assert!(err.contains("ResourceLimit") && err.contains("file descriptors"), "{err}");
    let (_, out, _) = strand(&[&["topic", "list"][..], &b].concat(), "");
    assert!(!out.contains("lots"), "{out}");

    // The refusals were logged at a bounded rate.
    let refusals = broker.stderr().matches("refusing a connection").count();
    assert!((1..=10).contains(&refusals), "{refusals} lines for {closed} refusals");

    // Once the connections go, the topic fits.
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    let (ok, _, err) = strand(&[&["topic", "create", "lots", "--partitions", "80"][..], &b].concat(), "");
    assert!(ok, "{err}");
}

#[test]
fn deleting_a_large_topic_answers_at_once_and_never_stalls_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--cores", "0"]);
    let bootstrap = broker.bootstrap();
    let b = ["--bootstrap", bootstrap.as_str()];
    // Past the per-topic limit: refused, nothing created, nothing logged per partition.
    let (ok, _, err) = strand(&[&["topic", "create", "toolarge", "--partitions", "100000"][..], &b].concat(), "");
    assert!(!ok);
    assert!(err.contains("limits.topic_partitions_max"), "{err}");
    assert!(broker.stderr().lines().count() < 20, "{}", broker.stderr());

    let args = ["topic", "create", "huge", "--partitions", "2000", "--config", "segment_bytes=65536"];
    let (ok, _, err) = strand(&[&args[..], &b].concat(), "");
    assert!(ok, "{err}");
    let (ok, _, err) = strand(&[&["topic", "create", "live", "--partitions", "1"][..], &b].concat(), "");
    assert!(ok, "{err}");

    // A client on the same shard keeps producing while the topic goes.
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let prober = {
        let (bootstrap, running) = (bootstrap.clone(), running.clone());
        std::thread::spawn(move || {
            let client = Client::connect(&bootstrap).unwrap();
            let mut slowest = Duration::ZERO;
            let mut sent = 0;
            while running.load(std::sync::atomic::Ordering::Relaxed) || sent < 20 {
                let mut builder = BatchBuilder::new();
                builder.push(None, Some(b"tick"), &[], 1_700_000_000_000);
                let started = Instant::now();
                assert_eq!(produce_with_acks(&client, "live", builder.build(), 1), ErrorCode::None);
                slowest = slowest.max(started.elapsed());
                sent += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            slowest
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let (ok, _, err) = strand(&[&["topic", "delete", "huge"][..], &b].concat(), "");
    assert!(ok, "{err}");
    // Gone from metadata at once, its files in the background.
    let (_, out, _) = strand(&[&["topic", "list"][..], &b].concat(), "");
    assert_eq!(out.trim(), "live\t1 partition");
    common::wait_for("the deleted topic's files removed", Duration::from_secs(60), || {
        // Left: `__consumer_offsets` and `live`.
        std::fs::read_dir(dir.path().join("topics")).unwrap().count() == 2
    });
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let slowest = prober.join().unwrap();
    // A liveness bound, not a speed target: the stall this catches was about 100 s.
    eprintln!("slowest produce while 2,000 partitions were deleted: {slowest:?}");
    assert!(slowest < Duration::from_secs(5), "a produce waited {slowest:?} while the topic was deleted");
}

/// The 16-byte header of a native frame whose payload is `payload_bytes` long.
fn frame_header(payload_bytes: usize) -> Vec<u8> {
    let mut header = frame(4, 0, &[]);
    header[..4].copy_from_slice(&(12 + payload_bytes as u32).to_le_bytes());
    header
}

/// `STRAND_HOSTILE_CONNECTIONS` and `STRAND_HOSTILE_MIB` scale the flood below (40
/// connections of 30 MiB by default): `bench/RESULTS.md` records a run with 1,000.
fn flood_size() -> (usize, usize) {
    let get = |key: &str, default: usize| std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    (get("STRAND_HOSTILE_CONNECTIONS", 40), get("STRAND_HOSTILE_MIB", 30))
}

#[test]
fn large_frames_arriving_slowly_share_one_bounded_budget_and_must_arrive_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strand.toml");
    std::fs::write(&config, "[limits]\nreceive_bytes_max = 104857600\nframe_timeout_ms = 4000\n").unwrap();
    let (connections, mib) = flood_size();
    let broker = Broker::start(&dir.path().join("data"), &["--cores", "0", "--config", config.to_str().unwrap()]);
    let bootstrap = broker.bootstrap();
    let (ok, _, err) = strand(&["topic", "create", "calm", "--partitions", "1", "--bootstrap", &bootstrap], "");
    assert!(ok, "{err}");
    let client = Client::connect(&bootstrap).unwrap();
    let before = common::rss_bytes(broker.pid());

    // 40 connections each send 30 MiB of a declared 100 MiB frame, as fast as the
    // broker takes them: 1.2 GiB if nothing bounded them.
    let senders: Vec<_> = (0..connections)
        .map(|_| {
            let port = broker.port;
            std::thread::spawn(move || {
                use std::io::Write;
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
                let _ = stream.write_all(&frame_header((100 << 20) - 16));
                let chunk = vec![0x42u8; 1 << 20];
                for _ in 0..mib {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
                stream
            })
        })
        .collect();
    // A normal client on the same shard meanwhile.
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let mut builder = BatchBuilder::new();
        builder.push(None, Some(b"small"), &[], 1_700_000_000_000);
        let sent = Instant::now();
        assert_eq!(produce_with_acks(&client, "calm", builder.build(), 1), ErrorCode::None);
        latencies.push(sent.elapsed());
    }
    let peak = common::rss_bytes(broker.pid());
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "RSS {} MiB -> {} MiB with {connections} connections holding partial 100 MiB frames ({mib} MiB sent on each); a small produce's p99 {p99:?} over {} requests",
        before >> 20,
        peak >> 20,
        latencies.len()
    );
    assert!(peak < before + (100 << 20) + (200 << 20), "RSS grew from {before} to {peak} bytes");
    let streams: Vec<_> = senders.into_iter().map(|s| s.join().unwrap()).collect();

    // A frame must arrive whole within frame_timeout_ms, however its bytes trickle.
    let mut trickle = std::net::TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    trickle.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let header = frame_header(1000);
    let mut closed = false;
    for i in 0..40 {
        if std::io::Write::write_all(&mut trickle, &header[i % 16..i % 16 + 1]).is_err() {
            closed = true;
            break;
        }
        match std::io::Read::read(&mut trickle, &mut [0u8; 64]) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "a connection trickling one byte every 300 ms stayed open for 12 s");
    assert!(broker.stderr().contains("limits.frame_timeout_ms"), "{}", broker.stderr());
    // The flood's connections timed out too: their budget is back, and the broker
    // still serves.
    drop(streams);
    let mut builder = BatchBuilder::new();
    builder.push(None, Some(&vec![1u8; 512 << 10]), &[], 1_700_000_000_000);
    assert_eq!(produce_with_acks(&client, "calm", builder.build(), 1), ErrorCode::None);
}
