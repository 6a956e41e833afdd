//! BGP messages (RFC 4271 4): the header, the message types, and the codec context that
//! negotiated capabilities set.

use crate::{Notification, Open, RouteRefresh, Update};

/// Length of the fixed header: marker (16), length (2), type (1).
pub const HEADER_LEN: usize = 19;
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

/// What the negotiated capabilities change in the encoding. Before OPENs are exchanged,
/// use [`CodecContext::default`] (2-octet AS, 4096-octet messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CodecContext {
    /// Both sides sent the 4-octet AS capability: AS_PATH and AGGREGATOR carry 4-octet ASNs.
    pub four_octet_as: bool,
    /// Both sides sent the extended message capability: messages up to 65535 octets
    /// (OPEN and KEEPALIVE stay within 4096, RFC 8654).
    pub extended_message: bool,
}

impl CodecContext {
    /// The largest message allowed in this context.
    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}
