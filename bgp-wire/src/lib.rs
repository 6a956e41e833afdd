//! The BGP-4 wire codec: typed messages, path attributes, capabilities and error codes.
//!
//! This crate depends on nothing else of the project: it turns bytes into typed values and
//! back. Decoding of UPDATEs classifies malformed attributes as RFC 7606 assigns
//! (treat-as-withdraw, attribute discard or session reset); a session reset comes back as
//! the [`Notification`] to send.
//!
//! - Reading a stream: [`frame_length`] checks the header of what is buffered and says
//!   how long the message is; [`Message::decode`] decodes that frame.
//! - Writing: [`Message::encode`] appends one message; [`encode_updates`] and
//!   [`encode_withdrawals`] pack any number of prefixes into as few UPDATEs as fit.
//! - [`CodecContext`] carries what the OPENs negotiated (4-octet AS, extended messages)
//!   and whether the peer is external (some RFC 7606 rules depend on it).
//! - A [`DecodeError`] is a session reset: send its `notification` and close. The other
//!   RFC 7606 outcomes are [`AttributeIssue`]s in the decoded [`Update`]; when one says
//!   [`RfcAction::TreatAsWithdraw`], handle every prefix it announces as withdrawn.

mod as4;
pub mod as_path;
pub mod attribute;
pub mod capability;
pub mod community;
pub mod error;
pub mod family;
pub mod message;
mod nlri;
pub mod notification;
pub mod open;
pub mod route_refresh;
pub mod update;
mod update_decode;
mod update_encode;
pub mod update_packer;
mod wire;

pub use as_path::{AsPath, AsSegment, SegmentType};
pub use attribute::{
    Aggregator, AttributeFlags, AttributeType, Origin, PathAttributes, RawAttribute,
};
pub use capability::{Capability, CapabilityCode, GracefulRestart, GracefulRestartFamily};
pub use community::{Community, LargeCommunity};
pub use error::{DecodeError, EncodeError};
pub use family::{Afi, Family, Safi};
pub use message::{CodecContext, Message, MessageType, frame_length};
pub use notification::{
    CeaseSubcode, HeaderSubcode, Notification, NotificationCode, OpenSubcode, UpdateSubcode,
};
pub use open::Open;
pub use route_refresh::{RouteRefresh, RouteRefreshSubtype};
pub use update::{AttributeIssue, MpNextHop, MpReach, MpUnreach, RfcAction, Update};
pub use update_packer::{encode_updates, encode_withdrawals};

/// AS_TRANS (RFC 6793): stands in for a 4-octet AS number towards a 2-octet speaker.
pub const AS_TRANS: u16 = 23456;
