//! Community values as policy writes them: `65000:100` (standard, RFC 1997),
//! `65000:1:2` (large, RFC 8092), or a well-known name (`no-export`, `no-advertise`,
//! `no-export-subconfed`, `no-peer`, `blackhole`, `graceful-shutdown`).

use std::{fmt, str::FromStr};

use bgp_wire::{Community, LargeCommunity, PathAttributes};
use serde::{Deserialize, Serialize};

/// A standard or large community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CommunityValue {
    /// A standard community.
    Standard(Community),
    /// A large community.
    Large(LargeCommunity),
}

/// Why a community did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("community `{text}`: {reason}")]
pub struct CommunityError {
    /// The text as written.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl CommunityValue {
    /// Whether `attrs` carry this community.
    pub fn is_in(&self, attrs: &PathAttributes) -> bool {
        match self {
            CommunityValue::Standard(c) => attrs.communities.contains(c),
            CommunityValue::Large(c) => attrs.large_communities.contains(c),
        }
    }

    /// Adds this community to `attrs` unless present.
    pub fn add_to(&self, attrs: &mut PathAttributes) {
        if self.is_in(attrs) {
            return;
        }
        match *self {
            CommunityValue::Standard(c) => attrs.communities.push(c),
            CommunityValue::Large(c) => attrs.large_communities.push(c),
        }
    }
}

const WELL_KNOWN: [(&str, Community); 6] = [
    ("no-export", Community::NO_EXPORT),
    ("no-advertise", Community::NO_ADVERTISE),
    ("no-export-subconfed", Community::NO_EXPORT_SUBCONFED),
    ("no-peer", Community::NO_PEER),
    ("blackhole", Community::BLACKHOLE),
    ("graceful-shutdown", Community::GRACEFUL_SHUTDOWN),
];

impl FromStr for CommunityValue {
    type Err = CommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| CommunityError {
            text: s.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some((_, c)) = WELL_KNOWN.iter().find(|(name, _)| *name == s) {
            return Ok(CommunityValue::Standard(*c));
        }
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [asn, value] => {
                let asn: u16 = asn
                    .parse()
                    .map_err(|_| err("the AS part of `AS:VALUE` must be 0 to 65535"))?;
                let value: u16 = value
                    .parse()
                    .map_err(|_| err("the value part of `AS:VALUE` must be 0 to 65535"))?;
                Ok(CommunityValue::Standard(Community::new(asn, value)))
            }
            [global, l1, l2] => {
                let num = |t: &str| {
                    t.parse::<u32>().map_err(|_| {
                        err("each part of `GLOBAL:LOCAL1:LOCAL2` must be 0 to 4294967295")
                    })
                };
                Ok(CommunityValue::Large(LargeCommunity {
                    global: num(global)?,
                    local1: num(l1)?,
                    local2: num(l2)?,
                }))
            }
            _ => Err(err(
                "expected AS:VALUE, GLOBAL:LOCAL1:LOCAL2 or a well-known name such as no-export",
            )),
        }
    }
}

impl fmt::Display for CommunityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommunityValue::Standard(c) => c.fmt(f),
            CommunityValue::Large(c) => c.fmt(f),
        }
    }
}

impl TryFrom<String> for CommunityValue {
    type Error = CommunityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CommunityValue> for String {
    fn from(c: CommunityValue) -> String {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_large_and_well_known_values_parse_and_print_back() {
        for s in [
            "65000:100",
            "0:0",
            "4200000000:1:2",
            "no-export",
            "blackhole",
        ] {
            let c: CommunityValue = s.parse().unwrap();
            assert_eq!(c.to_string(), s);
        }
        assert_eq!(
            "65000:100".parse::<CommunityValue>().unwrap(),
            CommunityValue::Standard(Community::new(65000, 100))
        );
        assert_eq!(
            "no-advertise".parse::<CommunityValue>().unwrap(),
            CommunityValue::Standard(Community::NO_ADVERTISE)
        );
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let e = |s: &str| s.parse::<CommunityValue>().unwrap_err().to_string();
        assert!(e("65536:1").contains("AS part"));
        assert!(e("1:70000").contains("value part"));
        assert!(e("1:2:x").contains("GLOBAL:LOCAL1:LOCAL2"));
        assert!(e("no-such").contains("well-known name"));
    }

    #[test]
    fn add_is_idempotent_and_is_in_sees_both_kinds() {
        let mut a = PathAttributes::default();
        let s: CommunityValue = "65000:1".parse().unwrap();
        let l: CommunityValue = "1:2:3".parse().unwrap();
        s.add_to(&mut a);
        s.add_to(&mut a);
        l.add_to(&mut a);
        assert_eq!(a.communities.len(), 1);
        assert_eq!(a.large_communities.len(), 1);
        assert!(s.is_in(&a) && l.is_in(&a));
    }
}
