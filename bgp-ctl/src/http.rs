//! A minimal HTTP/1.x responder for `/metrics`, `/healthz` and `/readyz`.
//!
//! Three GET endpoints read by Prometheus and kubelet do not need an HTTP stack: this
//! reads one request head (bounded in size and time), answers it from a closure and
//! closes the connection (`Connection: close`, as HTTP/1.0). Anything it does not
//! understand gets a 4xx status, never a panic.

use std::{io, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::timeout,
};

use crate::health::Health;

/// Longest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; further ones wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 32;

/// What a handler answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Response {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// The probe endpoints: `/healthz` (liveness) and `/readyz` (readiness) answer 200 or
/// 503 with the one-line verdict, which names every failing condition. `None` for any
/// other path, so the caller can chain its own (`/metrics`).
pub fn probe_response(path: &str, health: &Health) -> Option<Response> {
    match path {
        "/healthz" => {
            let status = if health.live { 200 } else { 503 };
            Some(Response::text(status, health.live_line() + "\n"))
        }
        "/readyz" => {
            let status = if health.ready && health.live {
                200
            } else {
                503
            };
            Some(Response::text(status, health.one_line() + "\n"))
        }
        _ => None,
    }
}

/// Serves connections from `listener` for ever, answering each GET or HEAD with
/// `handler(path)` (the path without its query string); `None` is a 404.
pub async fn serve<F>(listener: TcpListener, handler: F) -> io::Result<()>
where
    F: Fn(&str) -> Option<Response> + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return Ok(()); // the semaphore is never closed
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // EMFILE, ECONNABORTED and the like pass; a probe retries.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _ = answer(stream, handler.as_ref()).await;
            drop(permit);
        });
    }
}

async fn answer<F>(mut stream: TcpStream, handler: &F) -> io::Result<()>
where
    F: Fn(&str) -> Option<Response>,
{
    let response = match timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => return Ok(()), // too slow: close without a word
        Ok(Err(e)) => return Err(e),
        Ok(Ok(Head::TooLarge)) => (Response::text(431, "request head too large\n"), false),
        Ok(Ok(Head::Complete(head))) => route(&head, handler),
    };
    let (response, head_only) = response;
    stream.write_all(&encode(&response, head_only)).await?;
    stream.shutdown().await?;
    // Lingering close: closing with unread input would send a reset, which can reach
    // the client before it has read the response (a 431, say). Drain a bounded amount.
    let mut sink = [0u8; 4096];
    let _ = timeout(Duration::from_secs(1), async {
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
    Ok(())
}

enum Head {
    Complete(Vec<u8>),
    TooLarge,
}

/// Reads up to the blank line that ends the head (or EOF, for a bare HTTP/0.9-style line).
async fn read_head(stream: &mut TcpStream) -> io::Result<Head> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if n == 0
            || buf.windows(4).any(|w| w == b"\r\n\r\n")
            || buf.windows(2).any(|w| w == b"\n\n")
        {
            return Ok(Head::Complete(buf));
        }
        if buf.len() > MAX_HEAD {
            return Ok(Head::TooLarge);
        }
    }
}

/// The response to one request head, and whether to omit the body (HEAD).
fn route<F>(head: &[u8], handler: &F) -> (Response, bool)
where
    F: Fn(&str) -> Option<Response>,
{
    let Some(line) = head.split(|&b| b == b'\n').next() else {
        return (Response::text(400, "bad request\n"), false);
    };
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return (Response::text(400, "bad request line\n"), false);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return (Response::text(400, "bad request line\n"), false);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return (Response::text(405, "only GET and HEAD\n"), false),
    };
    let path = target.split(['?', '#']).next().unwrap_or(target);
    let response = handler(path).unwrap_or_else(|| Response::text(404, "not found\n"));
    (response, head_only)
}

fn encode(r: &Response, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    if r.status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(r.body.as_bytes());
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::{
        fib::AttachMode,
        health::{ConfigStatus, HealthInput, UplinkStatus, evaluate},
    };

    fn health(attached: bool) -> Health {
        let now = Instant::now();
        evaluate(&HealthInput {
            config: ConfigStatus::Loaded,
            uplinks: vec![UplinkStatus {
                name: "eth0".into(),
                want: AttachMode::Driver,
                attached: attached.then_some(AttachMode::Driver),
            }],
            peers: vec![],
            last_progress: now,
            stall_limit: Duration::from_secs(10),
            now,
        })
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on a loopback port; the health is
    /// ready or not as `ready` says.
    async fn server(ready: bool) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let h = health(ready);
        tokio::spawn(serve(listener, move |path| {
            probe_response(path, &h)
                .or_else(|| (path == "/metrics").then(|| Response::text(200, "bgp_up 1\n")))
        }));
        addr
    }

    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = String::new();
        timeout(Duration::from_secs(10), s.read_to_string(&mut out))
            .await
            .expect("server answered in time")
            .unwrap();
        out
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let raw = exchange(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await;
        let status = raw
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (status, body)
    }

    #[tokio::test]
    async fn probes_and_metrics_over_loopback() {
        let addr = server(true).await;
        assert_eq!(get(addr, "/healthz").await, (200, "live\n".into()));
        assert_eq!(
            get(addr, "/readyz").await,
            (
                200,
                "ready: config loaded, 1 uplink attached, 0/0 peers established\n".into()
            )
        );
        assert_eq!(get(addr, "/metrics?x=1").await, (200, "bgp_up 1\n".into()));
        assert_eq!(get(addr, "/nope").await.0, 404);
    }

    #[tokio::test]
    async fn not_ready_is_503_naming_the_condition() {
        let addr = server(false).await;
        assert_eq!(get(addr, "/healthz").await.0, 200, "still live");
        let (status, body) = get(addr, "/readyz").await;
        assert_eq!(status, 503);
        assert!(body.contains("uplink-not-attached:eth0"), "{body}");
    }

    #[tokio::test]
    async fn head_has_no_body_and_other_methods_are_refused() {
        let addr = server(true).await;
        let raw = exchange(addr, b"HEAD /healthz HTTP/1.0\r\n\r\n").await;
        assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
        assert!(raw.contains("Content-Length: 5\r\n"), "{raw}");
        assert!(raw.ends_with("\r\n\r\n"), "no body: {raw}");
        let raw = exchange(addr, b"POST /readyz HTTP/1.1\r\n\r\n").await;
        assert!(raw.starts_with("HTTP/1.1 405 "), "{raw}");
        assert!(raw.contains("Allow: GET, HEAD\r\n"), "{raw}");
    }

    #[tokio::test]
    async fn malformed_and_oversized_requests_get_4xx() {
        let addr = server(true).await;
        for bad in [
            &b"\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET /healthz\r\n\r\n",
            b"GET healthz HTTP/1.1\r\n\r\n",
            b"GET /healthz SPDY/3 extra\r\n\r\n",
            b"\xff\xfe /healthz HTTP/1.1\r\n\r\n",
        ] {
            let raw = exchange(addr, bad).await;
            assert!(raw.starts_with("HTTP/1.1 4"), "{bad:?} -> {raw}");
        }
        let mut huge = b"GET /healthz HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        let raw = exchange(addr, &huge).await;
        assert!(raw.starts_with("HTTP/1.1 431 "), "{raw}");
        // The server still answers afterwards.
        assert_eq!(get(addr, "/healthz").await.0, 200);
    }
}
