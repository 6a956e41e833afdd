//! Errors of decoding and encoding.
//!
//! A [`DecodeError`] is a "session reset" in the sense of RFC 7606: it carries the
//! NOTIFICATION the session sends before it closes the connection. Errors that RFC 7606
//! resolves without a reset are not errors: they are [`crate::AttributeIssue`]s of the
//! decoded [`crate::Update`].

use bytes::Bytes;

use crate::{Family, MessageType, Notification, NotificationCode};

/// The largest NOTIFICATION data this codec puts in an error: a NOTIFICATION (21 octets
/// of header, code and subcode) carrying it still fits in 4096 octets, whatever was
/// negotiated.
pub const MAX_NOTIFICATION_DATA: usize = 4096 - 21;

/// A message that cannot be used: the session sends `notification` and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (NOTIFICATION {})", notification.code)]
pub struct DecodeError {
    /// The NOTIFICATION to send, code, subcode and data as the RFCs assign them.
    pub notification: Notification,
    /// What was wrong, for the log ("ORIGIN length 2, expected 1").
    pub reason: String,
    /// For an error in MP_REACH_NLRI or MP_UNREACH_NLRI whose AFI/SAFI could be read:
    /// that family. RFC 4760 section 7 (and RFC 7606 section 2) let a speaker "disable"
    /// the family instead of resetting the session; the session decides.
    pub family: Option<Family>,
}

impl DecodeError {
    /// An error whose NOTIFICATION carries `data` (cut to [`MAX_NOTIFICATION_DATA`]).
    pub fn new(code: NotificationCode, data: &[u8], reason: impl Into<String>) -> Self {
        let data = data.get(..MAX_NOTIFICATION_DATA).unwrap_or(data);
        DecodeError {
            notification: Notification::with_data(code, Bytes::copy_from_slice(data)),
            reason: reason.into(),
            family: None,
        }
    }

    /// The same error, naming the family whose MP attribute was at fault.
    pub fn for_family(mut self, family: Option<Family>) -> Self {
        self.family = family;
        self
    }
}

/// A value that cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would exceed the largest length allowed in this context.
    #[error("{kind:?} message of {len} octets exceeds the maximum of {max}")]
    TooLong {
        /// Message type.
        kind: MessageType,
        /// Length it would have.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// A field whose wire size is bounded holds too much ("capability 64 value of 300
    /// octets, at most 255").
    #[error("{0}")]
    FieldTooLong(String),
    /// An UPDATE for a family this codec cannot encode.
    #[error("cannot encode UPDATEs for {0}")]
    UnsupportedFamily(Family),
    /// A prefix of another family than the one being encoded.
    #[error("prefix {prefix} is not of family {family}")]
    FamilyMismatch {
        /// The family being encoded.
        family: Family,
        /// The prefix that does not belong to it.
        prefix: ipnet::IpNet,
    },
    /// Routes to announce without a usable next hop for their family.
    #[error("no next hop for {0} routes")]
    MissingNextHop(Family),
}
