//! ROUTE-REFRESH message (RFC 2918, subtypes from RFC 7313).

use crate::Family;

/// Message subtype (the former reserved octet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteRefreshSubtype {
    /// Normal route refresh request (0).
    Request,
    /// Beginning of route refresh (1, RFC 7313).
    Begin,
    /// End of route refresh (2, RFC 7313).
    End,
    /// Any other value (RFC 7313: ignore the message).
    Other(u8),
}

impl RouteRefreshSubtype {
    /// Wire value.
    pub fn code(self) -> u8 {
        match self {
            RouteRefreshSubtype::Request => 0,
            RouteRefreshSubtype::Begin => 1,
            RouteRefreshSubtype::End => 2,
            RouteRefreshSubtype::Other(v) => v,
        }
    }
}

impl From<u8> for RouteRefreshSubtype {
    fn from(v: u8) -> Self {
        match v {
            0 => RouteRefreshSubtype::Request,
            1 => RouteRefreshSubtype::Begin,
            2 => RouteRefreshSubtype::End,
            v => RouteRefreshSubtype::Other(v),
        }
    }
}

/// A ROUTE-REFRESH message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub family: Family,
    /// Subtype.
    pub subtype: RouteRefreshSubtype,
}

impl RouteRefresh {
    /// Decodes a ROUTE-REFRESH message; `frame` is the whole message with its header
    /// (RFC 7313 5 puts all of it in the NOTIFICATION for a bad length).
    pub(crate) fn decode(frame: &[u8]) -> Result<RouteRefresh, crate::DecodeError> {
        use crate::{DecodeError, HeaderSubcode, NotificationCode as N, message::HEADER_LEN, wire};
        let body = frame.get(HEADER_LEN..).unwrap_or_default();
        let parsed = nom::Parser::parse(&mut (wire::u16, wire::u8, wire::u8), body);
        match parsed {
            Ok((&[], (afi, subtype, safi))) => Ok(RouteRefresh {
                family: Family {
                    afi: crate::Afi::from(afi),
                    safi: crate::Safi::from(safi),
                },
                subtype: RouteRefreshSubtype::from(subtype),
            }),
            // RFC 7313 5: a BoRR or EoRR whose length is not 4 (plus the header).
            Ok((_, (_, 1 | 2, _))) => Err(DecodeError::new(
                N::RouteRefresh(1),
                frame,
                format!("ROUTE-REFRESH of {} octets, expected 23", frame.len()),
            )),
            // RFC 2918 / RFC 4271 6.1: otherwise a header error.
            _ => Err(DecodeError::new(
                N::MessageHeader(HeaderSubcode::BadMessageLength),
                &(frame.len() as u16).to_be_bytes(),
                format!("ROUTE-REFRESH of {} octets, expected 23", frame.len()),
            )),
        }
    }

    /// Writes the body.
    pub(crate) fn encode(&self, out: &mut bytes::BytesMut) {
        use bytes::BufMut;
        out.put_u16(self.family.afi.code());
        out.put_u8(self.subtype.code());
        out.put_u8(self.family.safi.code());
    }
}
