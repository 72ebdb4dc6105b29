//! The admin HTTP endpoint: `/metrics`, `/healthz` and `/readyz`, served by hyper on a
//! one-thread tokio runtime of its own, off the shards' cores.
//!
//! With `admin.tls`, connections are HTTPS with the `[tls]` certificate (reloaded on
//! SIGHUP; no client certificate is asked for, so load balancers can probe). With
//! `admin.token_file`, `/metrics` needs `Authorization: Bearer <token>` (401
//! otherwise); `/healthz` and `/readyz` stay open for load balancers and systemd.
//!
//! Every connection is served concurrently, so a slow or stuck client holds only its
//! own connection: headers must arrive within `HEADER_TIMEOUT`, a connection lives at
//! most `CONNECTION_LIFETIME_MAX`, at most `CONNECTIONS_MAX` are open at once (more are
//! closed at accept), and a request's headers are bounded by `HEADER_BYTES_MAX`.
//! Requests read only the shards' relaxed atomics: scraping never touches a shard.

use crate::metrics::Registry;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Longest a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one connection stays open, whatever it does.
const CONNECTION_LIFETIME_MAX: Duration = Duration::from_secs(60);
/// Connections served at once; more are closed as they are accepted.
pub const CONNECTIONS_MAX: usize = 1024;
/// Largest request head (request line and headers) read.
const HEADER_BYTES_MAX: usize = 16 * 1024;

/// How the endpoint protects itself.
#[derive(Clone, Default)]
pub struct AdminSecurity {
    /// HTTPS, with these settings (the current ones at each handshake).
    pub tls: Option<Arc<crate::net::tls::TlsAcceptor>>,
    /// The bearer token `/metrics` needs.
    pub token: Option<Arc<str>>,
}

/// Serves the admin endpoint on `listener` until the process exits, on a thread of
/// its own.
pub fn serve_admin(
    listener: std::net::TcpListener,
    registry: Arc<Registry>,
    security: AdminSecurity,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    std::thread::Builder::new().name("admin-http".into()).spawn(move || {
        runtime.block_on(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => accept_loop(listener, registry, security).await,
                Err(error) => tracing::error!(%error, "the admin endpoint cannot listen"),
            }
        })
    })?;
    Ok(())
}

async fn accept_loop(listener: tokio::net::TcpListener, registry: Arc<Registry>, security: AdminSecurity) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, most likely: wait rather than spin.
                tracing::debug!(%error, "admin endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropped: closed at once
        };
        let (registry, security) = (registry.clone(), security.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let token = security.token.clone();
            let service = hyper::service::service_fn(move |request| {
                let response = route(&registry, token.as_deref(), &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let builder = {
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(HEADER_BYTES_MAX);
                builder
            };
            let served = async {
                match &security.tls {
                    None => {
                        let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                    }
                    Some(tls) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(tls.current_without_client_auth());
                        let Ok(Ok(stream)) = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await else {
                            return;
                        };
                        let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                    }
                }
            };
            let _ = tokio::time::timeout(CONNECTION_LIFETIME_MAX, served).await;
        });
    }
}

/// Whether `request` carries `Authorization: Bearer <token>`, compared in constant time.
fn authorized<B>(request: &Request<B>, token: &str) -> bool {
    let Some(given) = request.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(given) = given.strip_prefix("Bearer ") else { return false };
    given.len() == token.len() && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn route<B>(registry: &Registry, token: Option<&str>, request: &Request<B>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match request.uri().path() {
        "/metrics" if token.is_some_and(|token| !authorized(request, token)) => {
            let mut response =
                text(StatusCode::UNAUTHORIZED, "/metrics needs Authorization: Bearer <admin.token_file>\n");
            response
                .headers_mut()
                .insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
            response
        }
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(registry.render())));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        "/healthz" if registry.healthy() => text(StatusCode::OK, "ok\n"),
        "/healthz" => text(StatusCode::SERVICE_UNAVAILABLE, "a shard is not responding\n"),
        "/readyz" if registry.ready.load(Ordering::Relaxed) => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(StatusCode::NOT_FOUND, "/metrics, /healthz or /readyz\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain"));
    response
}
