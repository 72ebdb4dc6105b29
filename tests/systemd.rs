//! The broker under systemd: the unit files verify, and a socket standing in for
//! `NOTIFY_SOCKET` sees recovery status, READY=1 only once recovery is done, watchdog
//! pings, and STOPPING=1 on SIGTERM.

mod common;

use common::Broker;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strand_client::{block_on, Client, Producer, ProducerConfig, ProducerRecord};

#[test]
fn the_unit_files_verify() {
    let Ok(output) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        assert!(std::env::var_os("CI").is_none(), "CI must have systemd-analyze (Debian's systemd)");
        eprintln!("systemd-analyze is not installed: skipping");
        return;
    };
    assert!(output.status.success());
    let dir = tempfile::tempdir().unwrap();
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let mut paths = Vec::new();
    for name in ["strand.service", "strand-tune.service"] {
        // The units name the installed binary; point them at this build's.
        let text = std::fs::read_to_string(units.join(name)).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text.replace("/usr/bin/strand", env!("CARGO_BIN_EXE_strand"))).unwrap();
        paths.push(path);
    }
    let output = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A host without a running systemd cannot resolve the units' dependencies
    // (network-online.target…); everything about the units themselves must be clean.
    let own: Vec<&str> = stderr.lines().filter(|line| line.contains("strand")).collect();
    assert!(output.status.success() || own.is_empty(), "systemd-analyze verify:\n{stderr}");
    assert!(own.is_empty(), "systemd-analyze verify:\n{stderr}");
}

/// Datagrams received on a stand-in NOTIFY_SOCKET, with when they came.
fn listen(path: &Path) -> Arc<Mutex<Vec<(Instant, String)>>> {
    let socket = UnixDatagram::bind(path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buf) {
                sink.lock().unwrap().push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
            }
        }
    });
    received
}

#[test]
fn notify_socket_sees_ready_after_recovery_watchdog_pings_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A data directory worth recovering: 30 topics of 4 partitions with data.
    {
        let broker = Broker::start(&data, &[]);
        let client = Client::connect(&broker.bootstrap()).unwrap();
        for t in 0..30 {
            block_on(client.create_topic(&format!("t{t}"), 4, &[])).unwrap();
        }
        let producer = Producer::new(client, ProducerConfig::default());
        let value = vec![7u8; 1000];
        for i in 0..20_000u32 {
            producer.send(ProducerRecord::new(&format!("t{}", i % 30), &value).key(&i.to_le_bytes())).unwrap();
        }
        producer.flush();
        drop(broker);
    }
    let socket = dir.path().join("notify");
    let received = listen(&socket);
    let mut broker = Broker::start_with_env(
        dir.path(),
        &data,
        &[],
        &[("NOTIFY_SOCKET", socket.to_str().unwrap()), ("WATCHDOG_USEC", "300000"), ("RUST_LOG", "info")],
    );
    // The ready line is printed before READY=1 is sent; by then every partition is open.
    let client = Client::connect(&broker.bootstrap()).unwrap();
    let topics = block_on(client.topics()).unwrap();
    assert_eq!(topics.iter().filter(|t| t.name.starts_with('t')).count(), 30);
    std::thread::sleep(Duration::from_millis(1000));
    let messages = received.lock().unwrap().clone();
    let texts: Vec<&str> = messages.iter().map(|(_, m)| m.as_str()).collect();
    let ready = texts.iter().position(|m| m.starts_with("READY=1")).unwrap_or_else(|| panic!("{texts:#?}"));
    assert!(texts[0].starts_with("STATUS=Recovering 12"), "first, what is being recovered: {texts:#?}");
    let recovered = texts.iter().rposition(|m| m.contains("STATUS=Recovered")).unwrap();
    assert!(recovered < ready, "READY=1 only after every shard recovered: {texts:#?}");
    assert!(texts[ready].contains("STATUS=Serving 12"), "{}", texts[ready]);
    let pings = texts[ready..].iter().filter(|m| **m == "WATCHDOG=1").count();
    assert!(pings >= 3, "a ping every 150 ms: {pings} in a second: {texts:#?}");
    assert!(!texts.iter().any(|m| m.contains("STOPPING")));
    assert!(broker.stop(), "SIGTERM: a clean exit");
    std::thread::sleep(Duration::from_millis(300));
    let texts: Vec<String> = received.lock().unwrap().iter().map(|(_, m)| m.clone()).collect();
    assert!(texts.iter().any(|m| m.starts_with("STOPPING=1")), "{texts:#?}");
    // journald-friendly logs under systemd: a syslog priority on each line, no ANSI.
    let stderr = broker.stderr();
    assert!(stderr.lines().any(|l| l.starts_with("<6>strand::")), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}
