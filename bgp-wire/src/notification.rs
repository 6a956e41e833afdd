//! NOTIFICATION message: error codes and subcodes (RFC 4271 4.5 and 6, RFC 4486, RFC 5492,
//! RFC 6608, RFC 7313, RFC 8538, RFC 9384), and the shutdown communication of RFC 9003.

use bytes::Bytes;

/// Subcodes of Message Header Error (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderSubcode {
    /// 0: unspecific.
    Unspecific,
    /// 1: Connection Not Synchronized (bad marker).
    ConnectionNotSynchronized,
    /// 2: Bad Message Length (data: the length field).
    BadMessageLength,
    /// 3: Bad Message Type (data: the type octet).
    BadMessageType,
    /// Any other value.
    Other(u8),
}

/// Subcodes of OPEN Message Error (2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenSubcode {
    /// 0: unspecific.
    Unspecific,
    /// 1: Unsupported Version Number (data: highest supported version, 2 octets).
    UnsupportedVersionNumber,
    /// 2: Bad Peer AS.
    BadPeerAs,
    /// 3: Bad BGP Identifier.
    BadBgpIdentifier,
    /// 4: Unsupported Optional Parameter.
    UnsupportedOptionalParameter,
    /// 6: Unacceptable Hold Time.
    UnacceptableHoldTime,
    /// 7: Unsupported Capability (RFC 5492; data: the capabilities).
    UnsupportedCapability,
    /// 11: Role Mismatch (RFC 9234).
    RoleMismatch,
    /// Any other value.
    Other(u8),
}

/// Subcodes of UPDATE Message Error (3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateSubcode {
    /// 0: unspecific.
    Unspecific,
    /// 1: Malformed Attribute List.
    MalformedAttributeList,
    /// 2: Unrecognized Well-known Attribute.
    UnrecognizedWellKnownAttribute,
    /// 3: Missing Well-known Attribute (data: the missing type code).
    MissingWellKnownAttribute,
    /// 4: Attribute Flags Error.
    AttributeFlagsError,
    /// 5: Attribute Length Error.
    AttributeLengthError,
    /// 6: Invalid ORIGIN Attribute.
    InvalidOriginAttribute,
    /// 8: Invalid NEXT_HOP Attribute.
    InvalidNextHopAttribute,
    /// 9: Optional Attribute Error.
    OptionalAttributeError,
    /// 10: Invalid Network Field.
    InvalidNetworkField,
    /// 11: Malformed AS_PATH.
    MalformedAsPath,
    /// Any other value.
    Other(u8),
}

/// Subcodes of Cease (6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CeaseSubcode {
    /// 0: unspecific.
    Unspecific,
    /// 1: Maximum Number of Prefixes Reached (data: AFI, SAFI, limit).
    MaximumPrefixesReached,
    /// 2: Administrative Shutdown (data: RFC 9003 communication).
    AdministrativeShutdown,
    /// 3: Peer De-configured.
    PeerDeconfigured,
    /// 4: Administrative Reset (data: RFC 9003 communication).
    AdministrativeReset,
    /// 5: Connection Rejected.
    ConnectionRejected,
    /// 6: Other Configuration Change.
    OtherConfigurationChange,
    /// 7: Connection Collision Resolution.
    ConnectionCollisionResolution,
    /// 8: Out of Resources.
    OutOfResources,
    /// 9: Hard Reset (RFC 8538).
    HardReset,
    /// 10: BFD Down (RFC 9384).
    BfdDown,
    /// Any other value.
    Other(u8),
}

/// Error code and subcode of a NOTIFICATION.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationCode {
    /// 1: Message Header Error.
    MessageHeader(HeaderSubcode),
    /// 2: OPEN Message Error.
    OpenMessage(OpenSubcode),
    /// 3: UPDATE Message Error.
    UpdateMessage(UpdateSubcode),
    /// 4: Hold Timer Expired.
    HoldTimerExpired,
    /// 5: Finite State Machine Error; subcode per RFC 6608 (1 OpenSent, 2 OpenConfirm,
    /// 3 Established, 0 unspecified).
    FsmError(u8),
    /// 6: Cease.
    Cease(CeaseSubcode),
    /// 7: ROUTE-REFRESH Message Error (RFC 7313); subcode 1 = Invalid Message Length.
    RouteRefresh(u8),
    /// Any other code.
    Other {
        /// Error code.
        code: u8,
        /// Error subcode.
        subcode: u8,
    },
}

/// A NOTIFICATION message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Code and subcode.
    pub code: NotificationCode,
    /// Data field.
    pub data: Bytes,
}

impl Notification {
    /// A NOTIFICATION with empty data.
    pub fn new(code: NotificationCode) -> Self {
        Notification {
            code,
            data: Bytes::new(),
        }
    }

    /// A NOTIFICATION with the given data.
    pub fn with_data(code: NotificationCode, data: impl Into<Bytes>) -> Self {
        Notification {
            code,
            data: data.into(),
        }
    }

    /// A Cease with an RFC 9003 shutdown communication (UTF-8, at most 255 octets; longer
    /// text is cut at a character boundary).
    pub fn cease_with_communication(subcode: CeaseSubcode, text: &str) -> Self {
        let mut end = text.len().min(255);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(end + 1);
        data.push(end as u8);
        data.extend_from_slice(&text.as_bytes()[..end]);
        Notification::with_data(NotificationCode::Cease(subcode), data)
    }

    /// The RFC 9003 shutdown communication of an Administrative Shutdown or Reset, if the
    /// data holds a well-formed one.
    pub fn shutdown_communication(&self) -> Option<&str> {
        match self.code {
            NotificationCode::Cease(
                CeaseSubcode::AdministrativeShutdown | CeaseSubcode::AdministrativeReset,
            ) => {
                let (len, rest) = self.data.split_first()?;
                let text = rest.get(..usize::from(*len))?;
                std::str::from_utf8(text).ok()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_communication_round_trips_and_is_cut_at_255_octets() {
        let n = Notification::cease_with_communication(
            CeaseSubcode::AdministrativeShutdown,
            "maintenance, back at 14:00",
        );
        assert_eq!(
            n.shutdown_communication(),
            Some("maintenance, back at 14:00")
        );
        let long = "é".repeat(200); // 400 octets
        let n = Notification::cease_with_communication(CeaseSubcode::AdministrativeReset, &long);
        assert_eq!(n.data[0], 254);
        assert_eq!(n.shutdown_communication().map(str::len), Some(254));
        let other = Notification::new(NotificationCode::HoldTimerExpired);
        assert_eq!(other.shutdown_communication(), None);
    }
}
