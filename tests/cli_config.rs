//! `strand config check` against the real binary: a good file passes, a bad one is
//! refused with one line naming the key, and the printed defaults check clean.

use std::process::Command;

fn strand() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strand"))
}

#[test]
fn config_check_names_the_bad_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[[listeners]]\nname = \"native\"\nprotocol = \"native\"\nport = 19400\n").unwrap();
    let output = strand().args(["config", "check"]).arg(&good).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[storage]\nwrite_buffer_bytes = 1000\n").unwrap();
    let output = strand().args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(stderr.contains("storage.write_buffer_bytes = 1000"), "{stderr}");

    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[kafka]\nauto_create_topics = true\nauto_create = 1\n").unwrap();
    let output = strand().args(["config", "check"]).arg(&typo).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(stderr.contains("typo.toml:3:1: kafka.auto_create: unknown field `auto_create`"), "{stderr}");

    // A file of an earlier version says what replaced its keys.
    let old = dir.path().join("old.toml");
    std::fs::write(&old, "[listen]\naddress = \"0.0.0.0\"\nport = 9400\n").unwrap();
    let output = strand().args(["config", "check"]).arg(&old).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("[listen]: replaced by [[listeners]]"), "{stderr}");

    let output = strand().args(["config", "check"]).arg(dir.path().join("missing.toml")).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));
}

#[test]
fn printed_defaults_check_clean() {
    let output = strand().args(["config", "defaults"]).output().unwrap();
    assert!(output.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strand.toml");
    std::fs::write(&file, &output.stdout).unwrap();
    let check = strand().args(["config", "check"]).arg(&file).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}
