//! The `strand` CLI against the real broker: the README's quick start, and one clear
//! line on stderr with a non-zero exit for an unknown topic, an unreachable broker
//! and a bad argument.

mod common;

use common::{strand, Broker};

#[test]
fn quick_start_creates_produces_and_consumes() {
    // As in the README: the data directory is the relative default, `strand-data`.
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_in(dir.path(), std::path::Path::new("strand-data"), &[]);
    let bootstrap = broker.bootstrap();
    let b = ["--bootstrap", bootstrap.as_str()];

    let (ok, out, err) = strand(&[&["topic", "create", "orders", "--partitions", "3"][..], &b].concat(), "");
    assert!(ok, "{err}");
    assert!(out.contains("created topic orders"), "{out}");

    let (ok, out, err) = strand(&[&["topic", "list"][..], &b].concat(), "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "orders\t3 partitions");

    let input = "alice:order 1\nbob:order 2\nalice:order 3\n";
    let (ok, _, err) = strand(&[&["produce", "orders", "--key-separator", ":"][..], &b].concat(), input);
    assert!(ok, "{err}");
    assert!(err.contains("produced 3 records"), "{err}");

    let (ok, out, err) = strand(&[&["consume", "orders", "--from", "earliest"][..], &b].concat(), "");
    assert!(ok, "{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["order 1", "order 2", "order 3"]);

    // alice's records share a partition, in order.
    let (ok, out, err) = strand(&[&["consume", "orders", "--format", "json"][..], &b].concat(), "");
    assert!(ok, "{err}");
    let records: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let alice: Vec<&serde_json::Value> = records.iter().filter(|r| r["key"] == "alice").collect();
    assert_eq!(alice.len(), 2);
    assert_eq!(alice[0]["partition"], alice[1]["partition"]);
    assert_eq!(alice[0]["value"], "order 1");
    assert_eq!(alice[1]["value"], "order 3");

    let (ok, out, err) = strand(&[&["consume", "orders", "--count", "1"][..], &b].concat(), "");
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1);

    let (ok, out, err) = strand(&[&["topic", "describe", "orders"][..], &b].concat(), "");
    assert!(ok, "{err}");
    assert!(out.contains("3 partitions"), "{out}");
    let total: i64 = out.lines().skip(2).map(|l| l.split('\t').nth(3).unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(total, 3, "{out}");

    let (ok, _, err) = strand(&[&["topic", "delete", "orders"][..], &b].concat(), "");
    assert!(ok, "{err}");
    let (ok, out, _) = strand(&[&["topic", "list"][..], &b].concat(), "");
    assert!(ok);
    assert_eq!(out.trim(), "");
}

fn assert_one_line_failure(args: &[&str], expect: &str) {
    let (ok, _, err) = strand(args, "");
    assert!(!ok, "{args:?} should fail");
    assert_eq!(err.trim().lines().count(), 1, "one line for {args:?}: {err}");
    assert!(err.contains(expect), "{args:?}: {err:?} does not say {expect:?}");
}

#[test]
fn bad_requests_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]);
    let bootstrap = broker.bootstrap();
    let b = ["--bootstrap", bootstrap.as_str()];
    assert_one_line_failure(&[&["consume", "nope"][..], &b].concat(), "unknown topic \"nope\"");
    assert_one_line_failure(&[&["produce", "nope"][..], &b].concat(), "unknown topic \"nope\"");
    assert_one_line_failure(&[&["topic", "delete", "nope"][..], &b].concat(), "unknown topic \"nope\"");
    assert_one_line_failure(&[&["topic", "create", "x!", "--partitions", "1"][..], &b].concat(), "invalid topic name");
    assert_one_line_failure(&[&["topic", "create", "t", "--partitions", "0"][..], &b].concat(), "partition count 0");
    assert_one_line_failure(
        &[&["topic", "create", "t", "--partitions", "1", "--config", "fsync=maybe"][..], &b].concat(),
        "maybe",
    );
    assert_one_line_failure(&["topic", "list", "--bootstrap", "127.0.0.1:1"], "cannot reach the broker at 127.0.0.1:1");
    assert_one_line_failure(&[&["consume", "t", "--from", "yesterday"][..], &b].concat(), "--from \"yesterday\"");
    let (ok, _, err) = strand(&["topic", "create", "t"], "");
    assert!(!ok && err.contains("--partitions"), "{err}");
}
