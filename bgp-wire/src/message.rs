//! BGP messages (RFC 4271 4): the header, the message types, and the codec context that
//! negotiated capabilities set.

use bytes::{BufMut, BytesMut};

use crate::{
    DecodeError, EncodeError, HeaderSubcode as H, Notification, NotificationCode as N, Open,
    RouteRefresh, Update, update_decode, update_encode, wire,
};

/// Length of the fixed header: marker (16), length (2), type (1).
pub const HEADER_LEN: usize = 19;
/// The header's marker: all ones.
pub const MARKER: [u8; 16] = [0xFF; 16];
/// Largest message without the extended message capability.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message with the extended message capability (RFC 8654).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// Message type codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// OPEN (1).
    Open,
    /// UPDATE (2).
    Update,
    /// NOTIFICATION (3).
    Notification,
    /// KEEPALIVE (4).
    Keepalive,
    /// ROUTE-REFRESH (5, RFC 2918).
    RouteRefresh,
}

impl MessageType {
    /// Wire value.
    pub fn code(self) -> u8 {
        match self {
            MessageType::Open => 1,
            MessageType::Update => 2,
            MessageType::Notification => 3,
            MessageType::Keepalive => 4,
            MessageType::RouteRefresh => 5,
        }
    }

    /// The type for a wire value, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(MessageType::Open),
            2 => Some(MessageType::Update),
            3 => Some(MessageType::Notification),
            4 => Some(MessageType::Keepalive),
            5 => Some(MessageType::RouteRefresh),
            _ => None,
        }
    }
}

/// A BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Box<Update>),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// This message's type.
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }
}

/// What the negotiated capabilities (and the kind of peer) change in the encoding. Before
/// OPENs are exchanged, use [`CodecContext::default`] (2-octet AS, 4096-octet messages,
/// internal peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CodecContext {
    /// Both sides sent the 4-octet AS capability: AS_PATH and AGGREGATOR carry 4-octet ASNs.
    pub four_octet_as: bool,
    /// Both sides sent the extended message capability: messages up to 65535 octets
    /// (OPEN and KEEPALIVE stay within 4096, RFC 8654).
    pub extended_message: bool,
    /// The peer is external (eBGP, outside any confederation of ours). RFC 7606 discards
    /// LOCAL_PREF (7.5), ORIGINATOR_ID (7.9) and CLUSTER_LIST (7.10) received from it,
    /// and the encoder does not send them to it (RFC 4271 5.1.5, RFC 4456 8). Leave it
    /// `false` for iBGP and for confederation peers.
    pub ebgp: bool,
}

impl CodecContext {
    /// A context with everything spelled out.
    pub fn new(four_octet_as: bool, extended_message: bool, ebgp: bool) -> Self {
        CodecContext {
            four_octet_as,
            extended_message,
            ebgp,
        }
    }

    /// The largest message allowed in this context.
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

/// The largest length a message of type `kind` may have (RFC 8654: OPEN and KEEPALIVE
/// stay within 4096 octets even with the extended message capability).
fn max_len(kind: MessageType, ctx: &CodecContext) -> usize {
    match kind {
        MessageType::Open => MAX_MESSAGE_LEN,
        MessageType::Keepalive => HEADER_LEN,
        _ => ctx.max_message_len(),
    }
}

/// The smallest length of a message of type `kind` (RFC 4271 4, RFC 2918 3).
fn min_len(kind: MessageType) -> usize {
    match kind {
        MessageType::Open => 29,
        MessageType::Update => 23,
        MessageType::Notification => 21,
        MessageType::Keepalive => HEADER_LEN,
        MessageType::RouteRefresh => 23,
    }
}

fn bad_length(len: u16, why: String) -> DecodeError {
    DecodeError::new(
        N::MessageHeader(H::BadMessageLength),
        &len.to_be_bytes(),
        why,
    )
}

/// Checks the header at the start of `buf` (RFC 4271 6.1) and returns the length of the
/// whole message, or `None` while fewer than 19 octets are buffered.
///
/// Errors: a marker that is not all ones (Connection Not Synchronized), a length out of
/// 19..=max or below the type's minimum (Bad Message Length, data: the length field), an
/// unknown type (Bad Message Type, data: the type). A KEEPALIVE must be exactly 19
/// octets. ROUTE-REFRESH must have at least 23; a longer one is left to
/// [`Message::decode`], because RFC 7313 5 answers differently by subtype.
pub fn frame_length(buf: &[u8], ctx: &CodecContext) -> Result<Option<usize>, DecodeError> {
    let Ok((_, (marker, len, kind))) =
        nom::Parser::parse(&mut (|i| wire::bytes(i, 16), wire::u16, wire::u8), buf)
    else {
        return Ok(None);
    };
    if marker != MARKER {
        return Err(DecodeError::new(
            N::MessageHeader(H::ConnectionNotSynchronized),
            &[],
            "header marker is not all ones",
        ));
    }
    let n = usize::from(len);
    if n < HEADER_LEN || n > ctx.max_message_len() {
        return Err(bad_length(
            len,
            format!("message length {n}, allowed 19..={}", ctx.max_message_len()),
        ));
    }
    let Some(kind) = MessageType::from_code(kind) else {
        return Err(DecodeError::new(
            N::MessageHeader(H::BadMessageType),
            &[kind],
            format!("message type {kind}"),
        ));
    };
    if n < min_len(kind) || n > max_len(kind, ctx) {
        return Err(bad_length(
            len,
            format!(
                "{kind:?} of {n} octets, allowed {}..={}",
                min_len(kind),
                max_len(kind, ctx)
            ),
        ));
    }
    Ok(Some(n))
}

impl Message {
    /// Decodes one whole message, header included (as delimited by [`frame_length`]).
    pub fn decode(frame: &[u8], ctx: &CodecContext) -> Result<Message, DecodeError> {
        let len = match frame_length(frame, ctx)? {
            Some(len) if len == frame.len() => len,
            Some(len) => {
                return Err(bad_length(
                    len as u16,
                    format!(
                        "length field {len}, but the frame has {} octets",
                        frame.len()
                    ),
                ));
            }
            None => {
                return Err(bad_length(
                    frame.len() as u16,
                    format!("{} octets, shorter than a header", frame.len()),
                ));
            }
        };
        let kind = frame.get(18).copied().and_then(MessageType::from_code);
        let body = frame.get(HEADER_LEN..len).unwrap_or_default();
        match kind {
            Some(MessageType::Open) => Open::decode(body).map(Message::Open),
            Some(MessageType::Update) => {
                update_decode::decode_update(body, ctx).map(|u| Message::Update(Box::new(u)))
            }
            Some(MessageType::Notification) => {
                Notification::decode(body).map(Message::Notification)
            }
            Some(MessageType::Keepalive) => Ok(Message::Keepalive),
            Some(MessageType::RouteRefresh) => {
                RouteRefresh::decode(frame).map(Message::RouteRefresh)
            }
            None => Err(DecodeError::new(
                N::MessageHeader(H::BadMessageType),
                frame.get(18..19).unwrap_or_default(),
                "message type",
            )),
        }
    }

    /// Appends the message, header included, to `out`. On error nothing is appended.
    pub fn encode(&self, ctx: &CodecContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        let kind = self.kind();
        out.put_slice(&MARKER);
        out.put_u16(0);
        out.put_u8(kind.code());
        let body = match self {
            Message::Open(o) => o.encode(out),
            Message::Update(u) => update_encode::encode_update(u, ctx, out),
            Message::Notification(n) => {
                n.encode(out);
                Ok(())
            }
            Message::Keepalive => Ok(()),
            Message::RouteRefresh(r) => {
                r.encode(out);
                Ok(())
            }
        };
        let len = out.len() - start;
        let max = max_len(kind, ctx);
        let result = body.and_then(|()| {
            (len <= max)
                .then_some(())
                .ok_or(EncodeError::TooLong { kind, len, max })
        });
        match result {
            Ok(()) => {
                wire::patch_u16(out, start + 16, len as u16);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OpenSubcode, UpdateSubcode};

    fn header(len: u16, kind: u8) -> Vec<u8> {
        let mut v = vec![0xFF; 16];
        v.extend_from_slice(&len.to_be_bytes());
        v.push(kind);
        v
    }

    fn code(e: DecodeError) -> (N, Vec<u8>) {
        (e.notification.code, e.notification.data.to_vec())
    }

    #[test]
    fn frame_length_waits_for_a_header_then_checks_it() {
        let ctx = CodecContext::default();
        assert_eq!(frame_length(&[0xFF; 18], &ctx), Ok(None));
        assert_eq!(frame_length(&header(19, 4), &ctx), Ok(Some(19)));
        assert_eq!(frame_length(&header(4096, 2), &ctx), Ok(Some(4096)));
        let mut bad_marker = header(19, 4);
        bad_marker[3] = 0;
        assert_eq!(
            code(frame_length(&bad_marker, &ctx).unwrap_err()),
            (N::MessageHeader(H::ConnectionNotSynchronized), vec![])
        );
        for (len, kind) in [
            (18u16, 4u8),
            (4097, 2),
            (20, 4),
            (28, 1),
            (22, 2),
            (20, 3),
            (22, 5),
        ] {
            assert_eq!(
                code(frame_length(&header(len, kind), &ctx).unwrap_err()),
                (
                    N::MessageHeader(H::BadMessageLength),
                    len.to_be_bytes().to_vec()
                ),
                "length {len} type {kind}"
            );
        }
        assert_eq!(
            code(frame_length(&header(19, 6), &ctx).unwrap_err()),
            (N::MessageHeader(H::BadMessageType), vec![6])
        );
        let ext = CodecContext::new(true, true, false);
        assert_eq!(frame_length(&header(65535, 2), &ext), Ok(Some(65535)));
        // OPEN stays within 4096 octets (RFC 8654).
        assert!(frame_length(&header(5000, 1), &ext).is_err());
    }

    #[test]
    fn open_errors_carry_the_rfc_codes() {
        let ctx = CodecContext::default();
        let open = |version: u8, my_as: u16, hold: u16, id: [u8; 4], params: &[u8]| {
            let mut v = header(0, 1);
            v.push(version);
            v.extend_from_slice(&my_as.to_be_bytes());
            v.extend_from_slice(&hold.to_be_bytes());
            v.extend_from_slice(&id);
            v.push(params.len() as u8);
            v.extend_from_slice(params);
            let len = v.len() as u16;
            v[16..18].copy_from_slice(&len.to_be_bytes());
            v
        };
        let err = |frame: Vec<u8>| code(Message::decode(&frame, &ctx).unwrap_err());
        assert_eq!(
            err(open(3, 65000, 90, [1, 1, 1, 1], &[])),
            (
                N::OpenMessage(OpenSubcode::UnsupportedVersionNumber),
                vec![0, 4]
            )
        );
        assert_eq!(
            err(open(4, 0, 90, [1, 1, 1, 1], &[])),
            (N::OpenMessage(OpenSubcode::BadPeerAs), vec![])
        );
        for hold in [1, 2] {
            assert_eq!(
                err(open(4, 65000, hold, [1, 1, 1, 1], &[])),
                (N::OpenMessage(OpenSubcode::UnacceptableHoldTime), vec![])
            );
        }
        assert_eq!(
            err(open(4, 65000, 90, [0, 0, 0, 0], &[])),
            (N::OpenMessage(OpenSubcode::BadBgpIdentifier), vec![])
        );
        assert_eq!(
            err(open(4, 65000, 90, [1, 1, 1, 1], &[1, 2, 0, 0])),
            (
                N::OpenMessage(OpenSubcode::UnsupportedOptionalParameter),
                vec![]
            )
        );
        assert_eq!(
            err(open(4, 23456, 90, [1, 1, 1, 1], &[2, 6, 65, 4, 0, 0, 0, 0])),
            (N::OpenMessage(OpenSubcode::BadPeerAs), vec![])
        );
        // Several capabilities in one parameter, several parameters.
        let ok = Message::decode(
            &open(
                4,
                23456,
                0,
                [1, 1, 1, 1],
                &[2, 8, 65, 4, 0, 1, 0, 0, 2, 0, 2, 2, 70, 0],
            ),
            &ctx,
        )
        .unwrap();
        let Message::Open(o) = ok else {
            panic!("{ok:?}")
        };
        assert_eq!(o.asn(), 65536);
        assert_eq!(o.capabilities.len(), 3);
        assert!(o.has(&crate::Capability::EnhancedRouteRefresh));
    }

    #[test]
    fn route_refresh_length_errors_follow_rfc_7313() {
        let ctx = CodecContext::default();
        let mut borr = header(24, 5);
        borr.extend_from_slice(&[0, 1, 1, 1, 0]);
        assert_eq!(
            code(Message::decode(&borr, &ctx).unwrap_err()),
            (N::RouteRefresh(1), borr.clone())
        );
        let mut rr = header(24, 5);
        rr.extend_from_slice(&[0, 1, 0, 1, 0]);
        assert_eq!(
            code(Message::decode(&rr, &ctx).unwrap_err()),
            (N::MessageHeader(H::BadMessageLength), vec![0, 24])
        );
        let _ = UpdateSubcode::Unspecific;
    }
}
