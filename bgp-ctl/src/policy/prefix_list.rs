//! Prefix lists: ordered `permit`/`deny` entries such as `10.244.0.0/16 le 32`, first
//! match wins, no match denies (as in FRR and Cisco).
//!
//! An entry `P/len [ge G] [le L]` matches a route prefix R/r when R lies inside P/len
//! and r is in the length range: exactly `len` without ge/le, `G..=max` with ge only,
//! `len..=L` with le only, `G..=L` with both. `len <= G <= L <= max` is required.

use std::{fmt, str::FromStr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// What a matching entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListAction {
    /// The prefix is in the list.
    Permit,
    /// The prefix is not in the list.
    Deny,
}

/// One entry: `[permit|deny] PREFIX [ge N] [le N]` (permit when omitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrefixListEntry {
    /// Permit or deny.
    pub action: ListAction,
    /// The covering prefix (no host bits).
    pub prefix: IpNet,
    /// Shortest matching length, if given.
    pub ge: Option<u8>,
    /// Longest matching length, if given.
    pub le: Option<u8>,
}

/// Why a prefix list entry did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("prefix list entry `{entry}`: {reason}")]
pub struct PrefixListError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

impl PrefixListEntry {
    /// The range of prefix lengths this entry matches.
    pub fn length_range(&self) -> (u8, u8) {
        let len = self.prefix.prefix_len();
        let max = self.prefix.max_prefix_len();
        match (self.ge, self.le) {
            (None, None) => (len, len),
            (Some(ge), None) => (ge, max),
            (None, Some(le)) => (len, le),
            (Some(ge), Some(le)) => (ge, le),
        }
    }

    /// Whether `route` matches this entry (same family, inside, length in range).
    pub fn matches(&self, route: &IpNet) -> bool {
        let (lo, hi) = self.length_range();
        let r = route.prefix_len();
        r >= lo
            && r <= hi
            && match (self.prefix, route) {
                (IpNet::V4(p), IpNet::V4(r)) => p.contains(r),
                (IpNet::V6(p), IpNet::V6(r)) => p.contains(r),
                _ => false,
            }
    }
}

impl FromStr for PrefixListEntry {
    type Err = PrefixListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| PrefixListError {
            entry: s.to_owned(),
            reason,
        };
        let mut words = s.split_whitespace().peekable();
        let action = match words.peek() {
            Some(&"permit") => {
                words.next();
                ListAction::Permit
            }
            Some(&"deny") => {
                words.next();
                ListAction::Deny
            }
            _ => ListAction::Permit,
        };
        let prefix_text = words
            .next()
            .ok_or_else(|| err("no prefix (expected e.g. `10.244.0.0/16 le 32`)".into()))?;
        let prefix: IpNet = prefix_text.parse().map_err(|_| {
            err(format!(
                "`{prefix_text}` is not a prefix (expected ADDRESS/LENGTH)"
            ))
        })?;
        if prefix.trunc() != prefix {
            return Err(err(format!(
                "`{prefix}` has host bits set (did you mean {}?)",
                prefix.trunc()
            )));
        }
        let max = prefix.max_prefix_len();
        let (mut ge, mut le) = (None, None);
        while let Some(word) = words.next() {
            let slot = match word {
                "ge" => &mut ge,
                "le" => &mut le,
                other => {
                    return Err(err(format!(
                        "unexpected `{other}` (expected `ge N` or `le N`)"
                    )));
                }
            };
            if slot.is_some() {
                return Err(err(format!("`{word}` given twice")));
            }
            let n = words
                .next()
                .ok_or_else(|| err(format!("`{word}` needs a length")))?;
            let n: u8 = n
                .parse()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| err(format!("`{word} {n}`: length must be 0 to {max}")))?;
            *slot = Some(n);
        }
        let len = prefix.prefix_len();
        if let Some(g) = ge
            && g < len
        {
            return Err(err(format!(
                "ge {g} is shorter than the prefix length {len}"
            )));
        }
        if let Some(l) = le
            && l < len
        {
            return Err(err(format!(
                "le {l} is shorter than the prefix length {len}"
            )));
        }
        if let (Some(g), Some(l)) = (ge, le)
            && g > l
        {
            return Err(err(format!("ge {g} is greater than le {l}")));
        }
        Ok(PrefixListEntry {
            action,
            prefix,
            ge,
            le,
        })
    }
}

impl fmt::Display for PrefixListEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            ListAction::Permit => "permit",
            ListAction::Deny => "deny",
        };
        write!(f, "{action} {}", self.prefix)?;
        if let Some(g) = self.ge {
            write!(f, " ge {g}")?;
        }
        if let Some(l) = self.le {
            write!(f, " le {l}")?;
        }
        Ok(())
    }
}

impl TryFrom<String> for PrefixListEntry {
    type Error = PrefixListError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PrefixListEntry> for String {
    fn from(e: PrefixListEntry) -> String {
        e.to_string()
    }
}

/// A prefix list: entries in order, first match wins, no match denies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrefixList {
    /// The entries.
    pub entries: Vec<PrefixListEntry>,
}

impl PrefixList {
    /// A list from entry strings.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, PrefixListError> {
        Ok(PrefixList {
            entries: entries
                .into_iter()
                .map(str::parse)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether the list permits `route`.
    pub fn permits(&self, route: &IpNet) -> bool {
        self.entries
            .iter()
            .find(|e| e.matches(route))
            .is_some_and(|e| e.action == ListAction::Permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn entry(s: &str) -> PrefixListEntry {
        s.parse().unwrap()
    }

    #[test]
    fn exact_without_ge_or_le() {
        let e = entry("10.244.0.0/16");
        assert!(e.matches(&net("10.244.0.0/16")));
        assert!(!e.matches(&net("10.244.1.0/24")));
        assert!(!e.matches(&net("10.0.0.0/8")));
    }

    #[test]
    fn le_extends_to_longer_prefixes_inside() {
        let e = entry("10.244.0.0/16 le 32");
        assert!(e.matches(&net("10.244.0.0/16")));
        assert!(e.matches(&net("10.244.3.7/32")));
        assert!(!e.matches(&net("10.245.0.0/24")), "outside");
        assert!(!e.matches(&net("10.0.0.0/8")), "shorter");
        let e = entry("10.244.0.0/16 le 24");
        assert!(e.matches(&net("10.244.3.0/24")));
        assert!(!e.matches(&net("10.244.3.0/25")));
    }

    #[test]
    fn ge_alone_reaches_the_family_maximum() {
        let e = entry("10.0.0.0/8 ge 24");
        assert!(!e.matches(&net("10.1.0.0/16")));
        assert!(e.matches(&net("10.1.2.0/24")));
        assert!(e.matches(&net("10.1.2.3/32")));
        let e = entry("2001:db8::/32 ge 64");
        assert!(e.matches(&net("2001:db8:1::/128")));
        assert!(!e.matches(&net("2001:db8::/48")));
    }

    #[test]
    fn ge_and_le_bound_both_ends_including_equal_bounds() {
        let e = entry("10.0.0.0/8 ge 16 le 24");
        assert!(!e.matches(&net("10.0.0.0/15")));
        assert!(e.matches(&net("10.0.0.0/16")));
        assert!(e.matches(&net("10.0.0.0/24")));
        assert!(!e.matches(&net("10.0.0.0/25")));
        let e = entry("10.0.0.0/8 ge 8 le 8");
        assert!(e.matches(&net("10.0.0.0/8")));
        assert!(!e.matches(&net("10.0.0.0/9")));
        let any = entry("0.0.0.0/0 le 32");
        assert!(any.matches(&net("0.0.0.0/0")));
        assert!(any.matches(&net("192.0.2.1/32")));
        assert!(!any.matches(&net("::/0")), "families never mix");
    }

    #[test]
    fn first_match_wins_and_no_match_denies() {
        let l =
            PrefixList::parse(["deny 10.244.7.0/24 le 32", "permit 10.244.0.0/16 le 32"]).unwrap();
        assert!(!l.permits(&net("10.244.7.9/32")));
        assert!(l.permits(&net("10.244.8.9/32")));
        assert!(!l.permits(&net("192.0.2.0/24")));
        assert!(!PrefixList::default().permits(&net("10.0.0.0/8")));
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let e = |s: &str| s.parse::<PrefixListEntry>().unwrap_err().to_string();
        assert!(e("10.244.1.0/16").contains("host bits set (did you mean 10.244.0.0/16?)"));
        assert!(e("10.0.0.0/8 le 33").contains("length must be 0 to 32"));
        assert!(e("10.0.0.0/16 ge 8").contains("ge 8 is shorter than the prefix length 16"));
        assert!(e("10.0.0.0/16 le 8").contains("le 8 is shorter"));
        assert!(e("10.0.0.0/8 ge 24 le 16").contains("ge 24 is greater than le 16"));
        assert!(e("10.0.0.0/8 le 24 le 25").contains("`le` given twice"));
        assert!(e("10.0.0.0/8 lt 24").contains("unexpected `lt`"));
        assert!(e("10.0.0.0/8 le").contains("`le` needs a length"));
        assert!(e("10.0.0.0").contains("is not a prefix"));
        assert!(e("permit").contains("no prefix"));
        assert!(e("").contains("no prefix"));
    }

    #[test]
    fn text_round_trips_through_display_and_serde() {
        for s in [
            "permit 10.244.0.0/16 le 32",
            "deny 0.0.0.0/0",
            "permit 2001:db8::/32 ge 48 le 64",
        ] {
            assert_eq!(entry(s).to_string(), s);
        }
        assert_eq!(
            entry("10.0.0.0/8 ge 9").to_string(),
            "permit 10.0.0.0/8 ge 9"
        );
        let l: PrefixList =
            serde_json::from_str(r#"["10.244.0.0/16 le 32", "deny 0.0.0.0/0 le 32"]"#).unwrap();
        assert_eq!(l.entries.len(), 2);
        let back = serde_json::to_string(&l).unwrap();
        assert_eq!(
            back,
            r#"["permit 10.244.0.0/16 le 32","deny 0.0.0.0/0 le 32"]"#
        );
        let bad = serde_json::from_str::<PrefixList>(r#"["10.244.0.0/16 le 99"]"#).unwrap_err();
        assert!(bad.to_string().contains("length must be 0 to 32"), "{bad}");
    }
}
