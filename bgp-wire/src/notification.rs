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
        data.extend_from_slice(text.as_bytes().get(..end).unwrap_or_default());
        Notification::with_data(NotificationCode::Cease(subcode), data)
    }

    /// The NOTIFICATION a Cease/Hard Reset carries in its data (RFC 8538 3: code,
    /// subcode, data); `None` for any other NOTIFICATION or data shorter than two octets.
    pub fn hard_reset_inner(&self) -> Option<Notification> {
        if self.code != NotificationCode::Cease(CeaseSubcode::HardReset) {
            return None;
        }
        match self.data[..] {
            [code, subcode, ..] => Some(Notification {
                code: NotificationCode::from((code, subcode)),
                data: self.data.slice(2..),
            }),
            _ => None,
        }
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

impl Notification {
    /// The NOTIFICATION a Cease/Hard Reset carries as its data (RFC 8538 section 5),
    /// if this is one and its data holds at least a code and subcode.
    pub fn hard_reset_reason(&self) -> Option<Notification> {
        if self.code != NotificationCode::Cease(CeaseSubcode::HardReset) {
            return None;
        }
        match &self.data[..] {
            [code, subcode, rest @ ..] => Some(Notification {
                code: NotificationCode::from((*code, *subcode)),
                data: Bytes::copy_from_slice(rest),
            }),
            _ => None,
        }
    }
}

macro_rules! subcodes {
    ($ty:ident { $($v:ident = $n:literal => $name:literal,)* } other { $($on:literal => $oname:literal,)* }) => {
        impl $ty {
            /// Wire value.
            pub fn code(self) -> u8 {
                match self {
                    $($ty::$v => $n,)*
                    $ty::Other(v) => v,
                }
            }

            /// Name as FRR logs it (deprecated values keep their historic names).
            pub fn name(self) -> std::borrow::Cow<'static, str> {
                match self {
                    $($ty::$v => $name.into(),)*
                    $($ty::Other($on) => $oname.into(),)*
                    $ty::Other(v) => format!("Unknown subcode {v}").into(),
                }
            }
        }

        impl From<u8> for $ty {
            fn from(v: u8) -> Self {
                match v {
                    $($n => $ty::$v,)*
                    v => $ty::Other(v),
                }
            }
        }
    };
}

subcodes!(HeaderSubcode {
    Unspecific = 0 => "Unspecific",
    ConnectionNotSynchronized = 1 => "Connection Not Synchronized",
    BadMessageLength = 2 => "Bad Message Length",
    BadMessageType = 3 => "Bad Message Type",
} other {});

subcodes!(OpenSubcode {
    Unspecific = 0 => "Unspecific",
    UnsupportedVersionNumber = 1 => "Unsupported Version Number",
    BadPeerAs = 2 => "Bad Peer AS",
    BadBgpIdentifier = 3 => "Bad BGP Identifier",
    UnsupportedOptionalParameter = 4 => "Unsupported Optional Parameter",
    UnacceptableHoldTime = 6 => "Unacceptable Hold Time",
    UnsupportedCapability = 7 => "Unsupported Capability",
    RoleMismatch = 11 => "Role Mismatch",
} other {
    5 => "Authentication Failure",
});

subcodes!(UpdateSubcode {
    Unspecific = 0 => "Unspecific",
    MalformedAttributeList = 1 => "Malformed Attribute List",
    UnrecognizedWellKnownAttribute = 2 => "Unrecognized Well-known Attribute",
    MissingWellKnownAttribute = 3 => "Missing Well-known Attribute",
    AttributeFlagsError = 4 => "Attribute Flags Error",
    AttributeLengthError = 5 => "Attribute Length Error",
    InvalidOriginAttribute = 6 => "Invalid ORIGIN Attribute",
    InvalidNextHopAttribute = 8 => "Invalid NEXT_HOP Attribute",
    OptionalAttributeError = 9 => "Optional Attribute Error",
    InvalidNetworkField = 10 => "Invalid Network Field",
    MalformedAsPath = 11 => "Malformed AS_PATH",
} other {
    7 => "AS Routing Loop",
});

subcodes!(CeaseSubcode {
    Unspecific = 0 => "Unspecific",
    MaximumPrefixesReached = 1 => "Maximum Number of Prefixes Reached",
    AdministrativeShutdown = 2 => "Administrative Shutdown",
    PeerDeconfigured = 3 => "Peer De-configured",
    AdministrativeReset = 4 => "Administrative Reset",
    ConnectionRejected = 5 => "Connection Rejected",
    OtherConfigurationChange = 6 => "Other Configuration Change",
    ConnectionCollisionResolution = 7 => "Connection Collision Resolution",
    OutOfResources = 8 => "Out of Resources",
    HardReset = 9 => "Hard Reset",
    BfdDown = 10 => "BFD Down",
} other {});

impl NotificationCode {
    /// Error code and subcode on the wire.
    pub fn code(self) -> (u8, u8) {
        match self {
            NotificationCode::MessageHeader(s) => (1, s.code()),
            NotificationCode::OpenMessage(s) => (2, s.code()),
            NotificationCode::UpdateMessage(s) => (3, s.code()),
            NotificationCode::HoldTimerExpired => (4, 0),
            NotificationCode::FsmError(s) => (5, s),
            NotificationCode::Cease(s) => (6, s.code()),
            NotificationCode::RouteRefresh(s) => (7, s),
            NotificationCode::Other { code, subcode } => (code, subcode),
        }
    }
}

impl From<(u8, u8)> for NotificationCode {
    /// Every pair maps to a value whose [`NotificationCode::code`] gives it back.
    fn from((code, subcode): (u8, u8)) -> Self {
        match (code, subcode) {
            (1, s) => NotificationCode::MessageHeader(s.into()),
            (2, s) => NotificationCode::OpenMessage(s.into()),
            (3, s) => NotificationCode::UpdateMessage(s.into()),
            (4, 0) => NotificationCode::HoldTimerExpired,
            (5, s) => NotificationCode::FsmError(s),
            (6, s) => NotificationCode::Cease(s.into()),
            (7, s) => NotificationCode::RouteRefresh(s),
            (code, subcode) => NotificationCode::Other { code, subcode },
        }
    }
}

impl From<NotificationCode> for (u8, u8) {
    fn from(c: NotificationCode) -> Self {
        c.code()
    }
}

impl std::fmt::Display for NotificationCode {
    /// "Code name/Subcode name", as FRR logs it (e.g. "UPDATE Message Error/Malformed
    /// AS_PATH"); unknown values by number.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            NotificationCode::MessageHeader(s) => write!(f, "Message Header Error/{}", s.name()),
            NotificationCode::OpenMessage(s) => write!(f, "OPEN Message Error/{}", s.name()),
            NotificationCode::UpdateMessage(s) => write!(f, "UPDATE Message Error/{}", s.name()),
            NotificationCode::HoldTimerExpired => f.write_str("Hold Timer Expired/Unspecific"),
            NotificationCode::FsmError(s) => {
                let name = match s {
                    0 => "Unspecified Error".to_owned(),
                    1 => "Receive Unexpected Message in OpenSent State".to_owned(),
                    2 => "Receive Unexpected Message in OpenConfirm State".to_owned(),
                    3 => "Receive Unexpected Message in Established State".to_owned(),
                    s => format!("Unknown subcode {s}"),
                };
                write!(f, "Neighbor Events Error/{name}")
            }
            NotificationCode::Cease(s) => write!(f, "Cease/{}", s.name()),
            NotificationCode::RouteRefresh(1) => {
                f.write_str("ROUTE-REFRESH Message Error/Invalid Message Length")
            }
            NotificationCode::RouteRefresh(s) => {
                write!(f, "ROUTE-REFRESH Message Error/Unknown subcode {s}")
            }
            NotificationCode::Other { code: 4, subcode } => {
                write!(f, "Hold Timer Expired/Unknown subcode {subcode}")
            }
            NotificationCode::Other { code, subcode } => {
                write!(f, "Unknown error code {code}/Unknown subcode {subcode}")
            }
        }
    }
}

impl std::fmt::Display for Notification {
    /// The code, then the shutdown communication, the NOTIFICATION a Hard Reset carries,
    /// or the size of the data: `Cease/Hard Reset (Cease/Maximum Number of Prefixes
    /// Reached (7 octets of data))`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(inner) = self.hard_reset_inner() {
            write!(f, " ({inner})")?;
        } else if let Some(text) = self.shutdown_communication() {
            write!(f, " \"{text}\"")?;
        } else if let Some(inner) = self.hard_reset_reason() {
            // RFC 8538 section 5: the data is the NOTIFICATION that caused the reset.
            write!(f, " ({inner})")?;
        } else if !self.data.is_empty() {
            write!(f, " ({} octets of data)", self.data.len())?;
        }
        Ok(())
    }
}

impl Notification {
    /// Decodes a NOTIFICATION body (code, subcode, data); RFC 4271 6.4 has no error for
    /// unknown codes, they keep their numbers. The header check guarantees two octets.
    pub(crate) fn decode(body: &[u8]) -> Result<Notification, crate::DecodeError> {
        match body {
            [code, subcode, data @ ..] => Ok(Notification {
                code: NotificationCode::from((*code, *subcode)),
                data: Bytes::copy_from_slice(data),
            }),
            _ => Err(crate::DecodeError::new(
                NotificationCode::MessageHeader(HeaderSubcode::BadMessageLength),
                &((body.len() + 19) as u16).to_be_bytes(),
                "NOTIFICATION without code and subcode",
            )),
        }
    }

    /// Writes the NOTIFICATION body.
    pub(crate) fn encode(&self, out: &mut bytes::BytesMut) {
        use bytes::BufMut;
        let (code, subcode) = self.code.code();
        out.put_u8(code);
        out.put_u8(subcode);
        out.put_slice(&self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_like_frr_logs_and_codes_round_trip() {
        let c = NotificationCode::UpdateMessage(UpdateSubcode::MalformedAsPath);
        assert_eq!(c.to_string(), "UPDATE Message Error/Malformed AS_PATH");
        assert_eq!(c.code(), (3, 11));
        assert_eq!(
            NotificationCode::from((2, 1)).to_string(),
            "OPEN Message Error/Unsupported Version Number"
        );
        assert_eq!(
            NotificationCode::from((6, 2)),
            NotificationCode::Cease(CeaseSubcode::AdministrativeShutdown)
        );
        assert_eq!(
            NotificationCode::from((3, 7)).to_string(),
            "UPDATE Message Error/AS Routing Loop"
        );
        assert_eq!(
            NotificationCode::from((9, 9)).to_string(),
            "Unknown error code 9/Unknown subcode 9"
        );
        for code in 0..=255u8 {
            for subcode in [0u8, 1, 2, 3, 7, 11, 12, 200, 255] {
                assert_eq!(
                    NotificationCode::from((code, subcode)).code(),
                    (code, subcode)
                );
            }
        }
    }

    #[test]
    fn a_hard_reset_shows_the_notification_it_carries() {
        let n = Notification::with_data(
            NotificationCode::Cease(CeaseSubcode::HardReset),
            vec![6, 10],
        );
        assert_eq!(
            n.hard_reset_reason().map(|r| r.code),
            Some(NotificationCode::Cease(CeaseSubcode::BfdDown))
        );
        assert_eq!(n.to_string(), "Cease/Hard Reset (Cease/BFD Down)");
        let short =
            Notification::with_data(NotificationCode::Cease(CeaseSubcode::HardReset), vec![6]);
        assert_eq!(short.hard_reset_reason(), None);
        assert_eq!(short.to_string(), "Cease/Hard Reset (1 octets of data)");
    }

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

    #[test]
    fn hard_reset_shows_the_notification_it_carries() {
        let hard = |data: &[u8]| {
            Notification::with_data(
                NotificationCode::Cease(CeaseSubcode::HardReset),
                data.to_vec(),
            )
        };
        let n = hard(&[6, 1, 0, 1, 1, 0, 0, 0, 3]);
        let inner = n.hard_reset_inner().unwrap();
        assert_eq!(
            inner.code,
            NotificationCode::Cease(CeaseSubcode::MaximumPrefixesReached)
        );
        assert_eq!(&inner.data[..], &[0, 1, 1, 0, 0, 0, 3]);
        assert_eq!(
            n.to_string(),
            "Cease/Hard Reset (Cease/Maximum Number of Prefixes Reached (7 octets of data))"
        );
        let mut shut = vec![6, 2];
        shut.extend_from_slice(
            &Notification::cease_with_communication(CeaseSubcode::AdministrativeShutdown, "bye")
                .data,
        );
        assert_eq!(
            hard(&shut).to_string(),
            "Cease/Hard Reset (Cease/Administrative Shutdown \"bye\")"
        );
        // Too short to carry one: shown as plain data, never a panic.
        assert_eq!(hard(&[6]).hard_reset_inner(), None);
        assert_eq!(
            hard(&[6]).to_string(),
            "Cease/Hard Reset (1 octets of data)"
        );
        assert_eq!(hard(&[]).to_string(), "Cease/Hard Reset");
        let max = Notification::new(NotificationCode::Cease(
            CeaseSubcode::MaximumPrefixesReached,
        ));
        assert_eq!(max.hard_reset_inner(), None);
    }
}
