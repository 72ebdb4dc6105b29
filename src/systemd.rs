//! systemd integration without libsystemd: readiness and status notifications
//! (`sd_notify`'s datagram protocol on `$NOTIFY_SOCKET`), the watchdog
//! (`$WATCHDOG_USEC`), and detecting that systemd started us (for the default
//! configuration path and journald-friendly logs).

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `message` (newline-separated `KEY=VALUE` assignments such as `READY=1`) to
/// the service manager, if one asked for notifications. Returns whether it was sent.
pub fn notify(message: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return false };
    let Ok(socket) = UnixDatagram::unbound() else { return false };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket name.
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|address| socket.send_to_addr(message.as_bytes(), &address))
    } else {
        socket.send_to(message.as_bytes(), std::path::Path::new(&path))
    };
    sent.is_ok()
}

/// How often systemd expects `WATCHDOG=1`, if it watches this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID").ok().and_then(|p| p.parse::<u32>().ok()) {
        if pid != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Whether systemd started this process (as a service).
pub fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("NOTIFY_SOCKET").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_a_datagram_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        // The process environment is shared by every test thread: set and read it in
        // one test only.
        std::env::set_var("NOTIFY_SOCKET", &path);
        assert!(notify("READY=1\nSTATUS=serving"));
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
        assert!(!notify("READY=1"), "no socket, nothing sent");
    }
}
