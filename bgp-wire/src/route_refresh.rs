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
