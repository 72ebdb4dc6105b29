//! Transports: how a connection's bytes move, behind two small traits, so that the
//! connection loop (`connection`) and the writer (`writer`) never touch a socket.
//! Plain TCP is `Tcp`; TLS is `tls::Tls`, over the same traits.
//!
//! Everything here runs on one shard's thread (nothing is `Send`), so the traits use
//! `async fn` without `Send` bounds.

use bytes::BytesMut;
use futures_lite::io::AsyncWriteExt;
use glommio::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

/// The reading half of a connection.
#[allow(async_fn_in_trait)]
pub trait TransportRead {
    /// Receives up to `want` bytes into `buf`'s spare capacity (the caller made room),
    /// waiting at most `wait` for any to arrive: `ErrorKind::TimedOut` then. `Ok(0)`
    /// when the peer closed its side.
    async fn read_into(&mut self, buf: &mut BytesMut, want: usize, wait: Duration) -> std::io::Result<usize>;
}

/// The writing half of a connection.
#[allow(async_fn_in_trait)]
pub trait TransportWrite {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Ends the connection: the sending side only, or both when `both`.
    async fn shutdown(&mut self, both: bool);
}

/// A connection, before it is split into halves that work independently.
pub trait Transport {
    type Read: TransportRead;
    type Write: TransportWrite;
    /// The peer's address, for logs.
    fn peer(&self) -> String;
    /// The peer's IP address, for what the protocols report of a client (Kafka's
    /// client host) and, later, for access rules by host.
    fn peer_ip(&self) -> Option<std::net::IpAddr>;
    /// The principal's name a client certificate proved, on a TLS connection.
    fn certificate_principal(&self) -> Option<String> {
        None
    }
    fn split(self) -> std::io::Result<(Self::Read, Self::Write)>;
}

/// Plain TCP on a glommio socket.
pub struct Tcp(pub TcpStream);

impl Transport for Tcp {
    type Read = TcpStream;
    type Write = TcpStream;

    fn peer(&self) -> String {
        self.0.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into())
    }

    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.0.peer_addr().ok().map(|a| a.ip().to_canonical())
    }

    /// The writer gets its own descriptor for the same socket, so reads and writes
    /// proceed independently without a lock.
    fn split(self) -> std::io::Result<(TcpStream, TcpStream)> {
        let _ = self.0.set_nodelay(true);
        // SAFETY: dup returns a new descriptor for the same open socket, which the
        // second TcpStream then owns and closes.
        let write_fd = unsafe { libc::dup(self.0.as_raw_fd()) };
        if write_fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let writer = unsafe { TcpStream::from_raw_fd(write_fd) };
        Ok((self.0, writer))
    }
}

impl TransportRead for TcpStream {
    /// `recv` writes straight into the buffer's spare capacity, without zeroing it
    /// first; only the bytes it wrote become part of the buffer.
    async fn read_into(&mut self, buf: &mut BytesMut, want: usize, wait: Duration) -> std::io::Result<usize> {
        debug_assert!(buf.capacity() - buf.len() >= want);
        loop {
            let spare = buf.spare_capacity_mut();
            let len = want.min(spare.len());
            // SAFETY: recv writes at most `len` bytes into this spare capacity, which
            // the buffer owns; it initializes exactly the bytes it reports, and only
            // those are added to the buffer's length.
            let received = unsafe { libc::recv(self.as_raw_fd(), spare.as_mut_ptr().cast(), len, libc::MSG_DONTWAIT) };
            if received >= 0 {
                unsafe { buf.set_len(buf.len() + received as usize) };
                return Ok(received as usize);
            }
            let error = std::io::Error::last_os_error();
            match error.kind() {
                std::io::ErrorKind::WouldBlock => {}
                std::io::ErrorKind::Interrupted => continue,
                _ => return Err(error),
            }
            wait_readable(self, wait).await?;
        }
    }
}

/// Waits until `stream` is readable (a byte or the peer's close), at most `wait`:
/// `ErrorKind::TimedOut` then.
pub(super) async fn wait_readable(stream: &TcpStream, wait: Duration) -> std::io::Result<()> {
    let mut probe = [0u8; 1];
    match glommio::timer::timeout(wait, stream.peek(&mut probe)).await {
        Ok(_) => Ok(()),
        Err(glommio::GlommioError::TimedOut(_)) => Err(std::io::ErrorKind::TimedOut.into()),
        Err(error) => Err(error.into()),
    }
}

impl TransportWrite for TcpStream {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        AsyncWriteExt::write_all(self, bytes).await
    }

    async fn shutdown(&mut self, both: bool) {
        let how = if both { std::net::Shutdown::Both } else { std::net::Shutdown::Write };
        let _ = TcpStream::shutdown(self, how).await;
    }
}
