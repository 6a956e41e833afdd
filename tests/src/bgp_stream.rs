//! Blocking BGP message reading shared by the lab's scripted BGP speakers (the benchmark
//! feeder and the scripted test peer).

use std::{
    io::{ErrorKind, Read},
    net::TcpStream,
    time::Instant,
};

use anyhow::{Context, Result, anyhow, bail};
use bgp_wire::{CodecContext, Message, message::frame_length};

/// A message for error texts: NOTIFICATIONs with their code and subcode, others by type.
pub(crate) fn describe(m: &Message) -> String {
    match m {
        Message::Notification(n) => {
            let (code, sub) = n.code.code();
            format!("NOTIFICATION {code}/{sub} ({:?})", n.code)
        }
        other => format!("{:?}", other.kind()),
    }
}

/// Reads whole messages from a blocking stream.
#[derive(Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next message; fails on EOF, a malformed message, or at `deadline`.
    pub(crate) fn next(
        &mut self,
        stream: &mut TcpStream,
        ctx: &CodecContext,
        deadline: Instant,
    ) -> Result<Message> {
        loop {
            if let Some(len) =
                frame_length(&self.buf, ctx).map_err(|e| anyhow!("from the receiver: {e}"))?
                && self.buf.len() >= len
            {
                let frame: Vec<u8> = self.buf.drain(..len).collect();
                return Message::decode(&frame, ctx)
                    .map_err(|e| anyhow!("malformed message from the receiver: {e}"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("timed out waiting for the receiver's message");
            }
            stream.set_read_timeout(Some(left))?;
            let mut tmp = [0u8; 16384];
            match stream.read(&mut tmp) {
                Ok(0) => bail!("the receiver closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading from the receiver"),
            }
        }
    }
}
