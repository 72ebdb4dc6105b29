//! Signals: SIGINT and SIGTERM stop the broker, SIGHUP reloads the settings that can
//! change live. They are blocked in every thread and waited for on the main one.

use crate::config::BrokerConfig;
use std::sync::Arc;

pub(super) fn shutdown_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialized by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Blocks SIGINT and SIGTERM in this thread and every thread it starts afterwards, so
/// that `wait_for_shutdown_signal` receives them.
pub(super) fn block_shutdown_signals() {
    let set = shutdown_signals();
    // SAFETY: the set is valid; a null old set is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Waits for SIGINT, SIGTERM or SIGHUP; returns which.
pub(super) fn wait_for_signal() -> i32 {
    let set = shutdown_signals();
    let mut signal = 0;
    // SAFETY: the set is valid and `signal` is ours to write.
    unsafe { libc::sigwait(&set, &mut signal) };
    signal
}

/// SIGHUP: reads the configuration file again and applies what can change live
/// (`config::LIVE_KEYS`); logs what changed, what was applied and what waits for a
/// restart. An invalid file changes nothing.
/// `from` is the file and what it held when last read (before command-line
/// overrides, which stay).
pub(super) fn reload(
    from: Option<&mut (std::path::PathBuf, BrokerConfig)>,
    live: &std::sync::RwLock<Arc<BrokerConfig>>,
) {
    let Some((path, read)) = from else {
        tracing::warn!("SIGHUP: the broker started without a configuration file; nothing to reload");
        return;
    };
    let fresh = match BrokerConfig::load(path) {
        Ok(fresh) => fresh,
        Err(error) => {
            tracing::error!(%error, "SIGHUP: configuration refused; the running settings stay");
            return;
        }
    };
    let current = live.read().unwrap_or_else(|p| p.into_inner()).clone();
    let changed = read.changed_keys(&fresh);
    let (applied, later): (Vec<String>, Vec<String>) =
        changed.into_iter().partition(|key| crate::config::LIVE_KEYS.iter().any(|prefix| key.starts_with(prefix)));
    // Keys that wait for a restart keep their running values.
    let mut next = (*current).clone();
    next.log = fresh.log.clone();
    next.topic_defaults = fresh.topic_defaults.clone();
    next.groups = fresh.groups.clone();
    if applied.iter().any(|k| k.starts_with("log.")) {
        match crate::runtime::set_log_level(&next.log.level) {
            Ok(true) => {}
            Ok(false) => tracing::warn!("SIGHUP: RUST_LOG is set and keeps precedence over log.level"),
            Err(error) => tracing::error!(%error, "SIGHUP: the log filter could not be replaced"),
        }
    }
    *live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    *read = fresh;
    tracing::info!(
        file = %path.display(),
        applied = ?applied,
        at_restart = ?later,
        "SIGHUP: configuration reloaded"
    );
}

/// SIGHUP: reads the TLS certificate and key again, when a listener uses TLS. New
/// handshakes use them; connections already open keep what they agreed. Files that
/// cannot be read keep the running ones.
pub(super) fn reload_tls(tls: Option<&crate::net::tls::TlsAcceptor>) {
    let Some(tls) = tls else { return };
    match tls.reload() {
        Ok(()) => tracing::info!("SIGHUP: TLS certificate and key read again; new connections use them"),
        Err(error) => tracing::error!(%error, "SIGHUP: TLS files refused; the running certificate stays"),
    }
}
