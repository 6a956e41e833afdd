//! One TCP connection of a session: a reader task that frames and decodes the peer's
//! messages (batching UPDATEs), a writer task that sends whole messages, and the
//! [`UpdateSender`] through which the speaker queues UPDATEs on an Established connection.
//!
//! Memory is bounded whatever the peer does: the read buffer holds at most one message
//! beyond a read chunk, decoded messages wait in a bounded channel (the reader stops
//! reading when it is full, and TCP pushes back on the peer), and the write queue holds
//! a bounded number of chunks.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bgp_wire::{
    CodecContext, DecodeError, EncodeError, Message, MessageType, Notification, Open, RouteRefresh,
    RouteRefreshSubtype, Update, frame_length,
};
use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{mpsc, oneshot, watch},
};
use tracing::debug;

use super::{fsm::ConnId, negotiation::Negotiated, stats::PeerStats};

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 * 1024;
/// Most UPDATEs handed to the session in one batch.
pub const MAX_UPDATE_BATCH: usize = 256;
/// Most prefixes in one batch: the speaker handles a batch at a time, and a control
/// socket request waits for the batch in hand (~2 ms of work at this size, rather than
/// 80 ms for 256 full UPDATEs).
pub const MAX_BATCH_PREFIXES: usize = 4096;
/// Chunks (each one or more whole messages) queued for the writer.
pub const WRITE_QUEUE: usize = 64;
/// Time given to the last message and the NOTIFICATION when a connection closes.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// Time the reader keeps draining after a close, so that unread data does not make the
/// kernel answer with a RST that could discard our NOTIFICATION.
const CLOSE_DRAIN: Duration = Duration::from_secs(3);

/// What a connection tells its session.
#[derive(Debug)]
pub(super) enum Inbound {
    /// The outgoing connection attempt finished.
    Connected(io::Result<TcpStream>),
    /// An OPEN; the reader waits for [`ConnIo::use_codec`] (or a close) before going on.
    Open(Open),
    /// A KEEPALIVE.
    Keepalive,
    /// Consecutive UPDATEs, in order.
    Updates(Vec<Update>),
    /// A ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
    /// A NOTIFICATION.
    Notification(Notification),
    /// A message that cannot be framed or decoded; the reader stopped.
    Error(DecodeError),
    /// The connection closed or failed; the reader stopped.
    Closed(String),
}

/// What the reader does.
#[derive(Debug, Clone, Copy)]
enum ReaderMode {
    /// Decode with this context.
    Run(CodecContext),
    /// Stop delivering; read and discard until the peer closes.
    Drain,
}

/// The session's side of a running connection.
#[derive(Debug)]
pub(super) struct ConnIo {
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    mode: watch::Sender<ReaderMode>,
    data: mpsc::Sender<Bytes>,
    close: Option<oneshot::Sender<Option<Bytes>>>,
    wrote_updates: Arc<AtomicBool>,
}

impl ConnIo {
    /// Starts the reader and writer tasks of `stream`; the reader reports to `inbound`
    /// tagged with `conn`.
    pub fn spawn(
        conn: ConnId,
        stream: TcpStream,
        inbound: mpsc::Sender<(ConnId, Inbound)>,
        stats: Arc<PeerStats>,
    ) -> io::Result<ConnIo> {
        let local = stream.local_addr()?;
        let remote = stream.peer_addr()?;
        let (rd, wr) = stream.into_split();
        let (mode, mode_rx) = watch::channel(ReaderMode::Run(CodecContext::default()));
        let (data, data_rx) = mpsc::channel(WRITE_QUEUE);
        let (close, close_rx) = oneshot::channel();
        let wrote_updates = Arc::new(AtomicBool::new(false));
        tokio::spawn(
            Reader {
                conn,
                rd,
                inbound,
                mode: mode_rx,
                stats: stats.clone(),
                ctx: CodecContext::default(),
            }
            .run(),
        );
        tokio::spawn(write_loop(
            wr,
            data_rx,
            close_rx,
            stats,
            wrote_updates.clone(),
        ));
        Ok(ConnIo {
            local,
            remote,
            mode,
            data,
            close: Some(close),
            wrote_updates,
        })
    }

    /// Queues whole encoded messages if there is room; `false` if the queue is full or
    /// the writer is gone.
    pub fn try_send(&self, bytes: Bytes) -> bool {
        self.data.try_send(bytes).is_ok()
    }

    /// Lets the reader go on after an OPEN, decoding with `ctx`.
    pub fn use_codec(&self, ctx: CodecContext) {
        self.mode.send_replace(ReaderMode::Run(ctx));
    }

    /// Whether UPDATEs were written since the last call (they count as keepalives).
    pub fn take_wrote_updates(&self) -> bool {
        self.wrote_updates.swap(false, Ordering::Relaxed)
    }

    /// A sender of UPDATEs on this connection for the speaker.
    pub fn update_sender(&self, peer: IpAddr, negotiated: Arc<Negotiated>) -> UpdateSender {
        UpdateSender {
            peer,
            tx: self.data.clone(),
            negotiated,
        }
    }

    /// Closes: the writer sends `notification` (encoded) after the message in progress,
    /// then shuts the connection down; the reader drains. Queued messages are dropped.
    pub fn close(mut self, notification: Option<Bytes>) {
        self.shut(notification);
    }

    fn shut(&mut self, notification: Option<Bytes>) {
        self.mode.send_replace(ReaderMode::Drain);
        if let Some(close) = self.close.take() {
            let _ = close.send(notification);
        }
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        self.shut(None);
    }
}

struct Reader {
    conn: ConnId,
    rd: OwnedReadHalf,
    inbound: mpsc::Sender<(ConnId, Inbound)>,
    mode: watch::Receiver<ReaderMode>,
    stats: Arc<PeerStats>,
    ctx: CodecContext,
}

impl Reader {
    async fn run(mut self) {
        self.mode.borrow_and_update();
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        loop {
            if !self.decode_buffered(&mut buf).await {
                return self.drain().await;
            }
            if buf.capacity() - buf.len() < READ_CHUNK / 2 {
                buf.reserve(READ_CHUNK);
            }
            tokio::select! {
                r = self.rd.read_buf(&mut buf) => match r {
                    Ok(0) => {
                        self.deliver(Inbound::Closed("connection closed by the peer".into())).await;
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        self.deliver(Inbound::Closed(e.to_string())).await;
                        return;
                    }
                },
                changed = self.mode.changed() => {
                    if changed.is_err() || matches!(*self.mode.borrow_and_update(), ReaderMode::Drain) {
                        return self.drain().await;
                    }
                }
            }
        }
    }

    /// Decodes and delivers every whole message in `buf`; `false` when the reader must
    /// stop (an error, a close, or the session gone).
    async fn decode_buffered(&mut self, buf: &mut BytesMut) -> bool {
        let mut batch: Vec<Update> = Vec::new();
        let mut prefixes = 0;
        loop {
            let len = match frame_length(buf, &self.ctx) {
                Ok(Some(n)) if n <= buf.len() => n,
                Ok(_) => break,
                Err(e) => {
                    self.flush(&mut batch).await;
                    self.deliver(Inbound::Error(e)).await;
                    return false;
                }
            };
            let frame = buf.split_to(len);
            let message = match Message::decode(&frame, &self.ctx) {
                Ok(m) => m,
                Err(e) => {
                    self.flush(&mut batch).await;
                    self.deliver(Inbound::Error(e)).await;
                    return false;
                }
            };
            self.stats.received(message.kind(), 1);
            let inbound = match message {
                Message::Update(u) => {
                    if !u.issues.is_empty() {
                        debug!(conn = %self.conn, issues = ?u.issues, "UPDATE with RFC 7606 findings");
                    }
                    prefixes += u.prefix_count();
                    batch.push(*u);
                    if batch.len() >= MAX_UPDATE_BATCH || prefixes >= MAX_BATCH_PREFIXES {
                        prefixes = 0;
                        if !self.flush(&mut batch).await {
                            return false;
                        }
                    }
                    continue;
                }
                Message::Open(o) => Inbound::Open(o),
                Message::Keepalive => Inbound::Keepalive,
                Message::Notification(n) => Inbound::Notification(n),
                Message::RouteRefresh(r) => Inbound::RouteRefresh(r),
            };
            prefixes = 0;
            if !self.flush(&mut batch).await {
                return false;
            }
            let open = matches!(inbound, Inbound::Open(_));
            let stop = matches!(inbound, Inbound::Notification(_));
            if !self.deliver(inbound).await || stop {
                return false;
            }
            if open && !self.wait_for_codec().await {
                return false;
            }
        }
        self.flush(&mut batch).await
    }

    async fn flush(&mut self, batch: &mut Vec<Update>) -> bool {
        if batch.is_empty() {
            return true;
        }
        let updates = std::mem::take(batch);
        self.deliver(Inbound::Updates(updates)).await
    }

    /// Hands a message to the session, waiting while its queue is full (so the socket is
    /// not read meanwhile). `false` if the session closed this connection or is gone.
    async fn deliver(&mut self, inbound: Inbound) -> bool {
        let conn = self.conn;
        let inbound_tx = self.inbound.clone();
        let send = inbound_tx.send((conn, inbound));
        tokio::pin!(send);
        loop {
            tokio::select! {
                r = &mut send => return r.is_ok(),
                changed = self.mode.changed() => {
                    if changed.is_err() || matches!(*self.mode.borrow_and_update(), ReaderMode::Drain) {
                        return false;
                    }
                }
            }
        }
    }

    /// After an OPEN: the session negotiates and tells how to decode what follows.
    async fn wait_for_codec(&mut self) -> bool {
        if self.mode.changed().await.is_err() {
            return false;
        }
        match *self.mode.borrow_and_update() {
            ReaderMode::Run(ctx) => {
                self.ctx = ctx;
                true
            }
            ReaderMode::Drain => false,
        }
    }

    async fn drain(mut self) {
        let mut scratch = vec![0u8; 16 * 1024];
        let _ = tokio::time::timeout(CLOSE_DRAIN, async {
            while matches!(self.rd.read(&mut scratch).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// Counts the messages of a chunk by walking their headers (16-octet marker, length,
/// type); whether it held UPDATEs.
fn count_sent(chunk: &[u8], stats: &PeerStats) -> bool {
    let mut at = 0;
    let mut updates = false;
    while let (Some(len), Some(kind)) = (
        chunk.get(at + 16..at + 18),
        chunk.get(at + 18).copied().and_then(MessageType::from_code),
    ) {
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len < 19 {
            break;
        }
        stats.sent(kind, 1);
        updates |= kind == MessageType::Update;
        at += len;
    }
    updates
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut data: mpsc::Receiver<Bytes>,
    mut close: oneshot::Receiver<Option<Bytes>>,
    stats: Arc<PeerStats>,
    wrote_updates: Arc<AtomicBool>,
) {
    loop {
        let chunk = tokio::select! {
            biased;
            c = &mut close => return finish(wr, c.ok().flatten(), &[], &stats).await,
            d = data.recv() => match d {
                Some(chunk) => chunk,
                None => return finish(wr, None, &[], &stats).await,
            },
        };
        let mut off = 0;
        while off < chunk.len() {
            tokio::select! {
                biased;
                c = &mut close => {
                    let rest = chunk.get(off..).unwrap_or_default();
                    return finish(wr, c.ok().flatten(), rest, &stats).await;
                }
                r = wr.write(chunk.get(off..).unwrap_or_default()) => match r {
                    Ok(n) if n > 0 => off += n,
                    // The reader sees the failure too and reports it.
                    _ => return,
                },
            }
        }
        if count_sent(&chunk, &stats) {
            wrote_updates.store(true, Ordering::Relaxed);
        }
    }
}

/// Completes the message being written (a NOTIFICATION must start on a message
/// boundary), sends the NOTIFICATION, shuts down; all within [`CLOSE_FLUSH`].
async fn finish(
    mut wr: OwnedWriteHalf,
    notification: Option<Bytes>,
    rest: &[u8],
    stats: &PeerStats,
) {
    let _ = tokio::time::timeout(CLOSE_FLUSH, async {
        wr.write_all(rest).await?;
        if let Some(n) = notification {
            wr.write_all(&n).await?;
            stats.sent(MessageType::Notification, 1);
        }
        wr.shutdown().await
    })
    .await;
}

/// Why a message could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The connection is closed: the session it belonged to is down.
    #[error("the session is closed")]
    Closed,
    /// The message cannot be encoded for this session.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The peer did not negotiate what the message needs.
    #[error("not negotiated with the peer: {0}")]
    NotNegotiated(String),
}

/// Queues messages on the connection of one Established session. Cloneable; every
/// clone stops working (with [`SendError::Closed`]) when that session goes down, so a
/// message can never reach a later session by mistake. Sending waits while the queue is
/// full (at most [`WRITE_QUEUE`] chunks): a peer that reads slowly slows the sender.
#[derive(Debug, Clone)]
pub struct UpdateSender {
    peer: IpAddr,
    tx: mpsc::Sender<Bytes>,
    negotiated: Arc<Negotiated>,
}

impl UpdateSender {
    /// The peer.
    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// What the session negotiated.
    pub fn negotiated(&self) -> &Arc<Negotiated> {
        &self.negotiated
    }

    /// The context to encode this session's messages with.
    pub fn codec_context(&self) -> CodecContext {
        self.negotiated.codec_context()
    }

    /// Whether the session is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Queues whole messages encoded with [`UpdateSender::codec_context`] (for example by
    /// `bgp_wire::encode_updates`): the fast path for tables, encoded once for every peer
    /// that shares a context.
    pub async fn send_encoded(&self, messages: Bytes) -> Result<(), SendError> {
        if messages.is_empty() {
            return Ok(());
        }
        self.tx.send(messages).await.map_err(|_| SendError::Closed)
    }

    /// Encodes and queues UPDATEs, as one chunk.
    pub async fn send_updates(&self, updates: &[Update]) -> Result<(), SendError> {
        let ctx = self.codec_context();
        let mut out = BytesMut::new();
        for u in updates {
            Message::Update(Box::new(u.clone())).encode(&ctx, &mut out)?;
        }
        self.send_encoded(out.freeze()).await
    }

    /// Queues a ROUTE-REFRESH (RFC 2918; Begin/End of route refresh per RFC 7313), if the
    /// peer negotiated it and the family.
    pub async fn send_route_refresh(&self, refresh: RouteRefresh) -> Result<(), SendError> {
        let n = &self.negotiated;
        if !n.route_refresh {
            return Err(SendError::NotNegotiated("route refresh".into()));
        }
        if !n.has_family(refresh.family) {
            return Err(SendError::NotNegotiated(refresh.family.to_string()));
        }
        if refresh.subtype != RouteRefreshSubtype::Request && !n.enhanced_route_refresh {
            return Err(SendError::NotNegotiated("enhanced route refresh".into()));
        }
        let mut out = BytesMut::new();
        Message::RouteRefresh(refresh).encode(&self.codec_context(), &mut out)?;
        self.send_encoded(out.freeze()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_chunks_are_counted_by_message_type() {
        let ctx = CodecContext::default();
        let mut out = BytesMut::new();
        for m in [
            Message::Keepalive,
            Message::Update(Box::default()),
            Message::Update(Box::default()),
        ] {
            m.encode(&ctx, &mut out).unwrap();
        }
        let stats = PeerStats::default();
        assert!(count_sent(&out, &stats));
        let s = stats.snapshot().sent;
        assert_eq!((s.keepalive, s.update, s.total()), (1, 2, 3));
        let stats = PeerStats::default();
        assert!(!count_sent(&out[..19], &stats));
        // A truncated or garbled chunk stops the count instead of panicking.
        assert!(!count_sent(&[0xFF; 18], &stats));
        assert_eq!(stats.snapshot().sent.total(), 1);
    }
}
