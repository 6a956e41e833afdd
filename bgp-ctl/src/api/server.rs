//! The control socket: a Unix stream socket, mode 0600, that also refuses any peer whose
//! credentials are not root's (a copied or remounted socket keeps that check).

use std::{future::Future, io, os::unix::fs::PermissionsExt, path::Path, sync::Arc};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter},
    net::{UnixListener, UnixStream},
    sync::mpsc,
};

use super::protocol::{API_VERSION, Envelope, Reply, Request};

/// Longest request line accepted; requests are small.
const MAX_REQUEST: u64 = 64 * 1024;

/// Replies of one request, streamed back as they are produced.
pub type ReplySink = mpsc::Sender<Reply>;

/// What the daemon does with a request.
pub trait Handler: Send + Sync + 'static {
    /// Answers `request` by sending replies into `out`; the server ends the stream with
    /// [`Reply::End`] unless the handler sent [`Reply::Error`] last.
    fn handle(&self, request: Request, out: ReplySink) -> impl Future<Output = ()> + Send;
}

/// Binds the control socket at `path` (creating its directory), replacing a stale socket
/// file but refusing to take over one a running daemon still answers on.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by a running daemon", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves connections until the listener fails.
pub async fn serve<H: Handler>(listener: UnixListener, handler: Arc<H>) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            if let Err(e) = connection(stream, handler).await {
                tracing::debug!("control connection: {e}");
            }
        });
    }
}

async fn connection<H: Handler>(stream: UnixStream, handler: Arc<H>) -> io::Result<()> {
    let root = stream.peer_cred().map(|c| c.uid() == 0).unwrap_or(false);
    let (rd, wr) = stream.into_split();
    let mut wr = BufWriter::new(wr);
    if !root {
        tracing::warn!("control socket: refused a connection from a non-root user");
        return write_reply(
            &mut wr,
            &Reply::Error {
                message: "permission denied: the control socket is for root only".into(),
            },
        )
        .await;
    }
    let mut line = String::new();
    BufReader::new(rd)
        .take(MAX_REQUEST)
        .read_line(&mut line)
        .await?;
    let request = match serde_json::from_str::<Envelope<Request>>(&line) {
        Ok(env) if env.version == API_VERSION => env.body,
        Ok(env) => {
            let message = format!(
                "API version {} is not supported; this daemon speaks version {API_VERSION}",
                env.version
            );
            return write_reply(&mut wr, &Reply::Error { message }).await;
        }
        Err(e) => {
            let message = format!("malformed request: {e}");
            return write_reply(&mut wr, &Reply::Error { message }).await;
        }
    };
    let (tx, mut rx) = mpsc::channel(256);
    let work = tokio::spawn(async move { handler.handle(request, tx).await });
    let mut last_was_error = false;
    while let Some(reply) = rx.recv().await {
        last_was_error = matches!(reply, Reply::Error { .. });
        write_reply(&mut wr, &reply).await?;
    }
    let _ = work.await;
    if !last_was_error {
        write_reply(&mut wr, &Reply::End).await?;
    }
    wr.flush().await
}

async fn write_reply<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut BufWriter<W>,
    reply: &Reply,
) -> io::Result<()> {
    let mut line = serde_json::to_vec(&Envelope::new(reply)).map_err(io::Error::other)?;
    line.push(b'\n');
    wr.write_all(&line).await?;
    if matches!(reply, Reply::End | Reply::Error { .. }) {
        wr.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::client;

    struct Counting;

    impl Handler for Counting {
        async fn handle(&self, request: Request, out: ReplySink) {
            match request {
                Request::ShowNeighbors => {
                    for i in 0..1000 {
                        let message = format!("line {i}");
                        if out.send(Reply::Done { message }).await.is_err() {
                            return;
                        }
                    }
                }
                _ => {
                    let message = "not here".to_string();
                    let _ = out.send(Reply::Error { message }).await;
                }
            }
        }
    }

    #[test]
    fn replies_stream_in_order_and_errors_end_the_stream() {
        let dir = std::env::temp_dir().join(format!("bgp-ctl-api-{}", std::process::id()));
        let path = dir.join("ctl.sock");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listener = rt.block_on(async { bind(&path) }).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        rt.spawn(serve(listener, Arc::new(Counting)));

        let replies = client::collect(&path, &Request::ShowNeighbors).unwrap();
        assert_eq!(replies.len(), 1000);
        assert_eq!(
            replies[999],
            Reply::Done {
                message: "line 999".into()
            }
        );
        let err = client::collect(&path, &Request::ShowStats).unwrap_err();
        assert_eq!(err.to_string(), "not here");

        // A second daemon must not steal the socket of a running one.
        let again = rt.block_on(async { bind(&path) });
        assert_eq!(again.unwrap_err().kind(), io::ErrorKind::AddrInUse);
        drop(rt);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
