//! Match conditions of a policy term: prefix list, communities, AS path.
//!
//! AS path patterns use a small glob syntax instead of regular expressions: the pattern
//! is a list of words matched against the whole path, AS by AS (an AS_SET counts as one
//! element, matched by a number it contains):
//! - a number matches that AS;
//! - `?` matches any one AS;
//! - `*` matches any run of ASes, also none.
//!
//! So `65001 *` is "learned from neighbor 65001", `* 65010` "originated by 65010",
//! `* 64512 *` "passes through 64512", `? ?` "exactly two ASes", and `` (empty) "no AS at
//! all" (a route from inside our AS). It covers what the usual `_65001_`, `^65001_` and
//! `_65010$` regular expressions are used for, with no regex engine and no surprises.

use std::{collections::BTreeMap, fmt, str::FromStr};

use bgp_wire::{AsPath, SegmentType};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{community::CommunityValue, prefix_list::PrefixList};

/// Conditions of a term: all given ones must hold; none given matches every route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Conditions {
    /// The route's prefix is permitted by this named prefix list.
    pub prefix_list: Option<String>,
    /// The route carries these communities.
    pub community: Option<CommunityMatch>,
    /// The route's AS path matches.
    pub as_path: Option<AsPathMatch>,
}

impl Conditions {
    /// Whether the route matches; `lists` holds the prefix lists by name (a missing list
    /// matches nothing: [`super::RoutingPolicy::validate`] reports it before use).
    pub fn matches(
        &self,
        prefix: &IpNet,
        attrs: &bgp_wire::PathAttributes,
        lists: &BTreeMap<String, PrefixList>,
    ) -> bool {
        if let Some(name) = &self.prefix_list
            && !lists.get(name).is_some_and(|l| l.permits(prefix))
        {
            return false;
        }
        if let Some(c) = &self.community
            && !c.matches(attrs)
        {
            return false;
        }
        if let Some(a) = &self.as_path
            && !a.matches(&attrs.as_path)
        {
            return false;
        }
        true
    }
}

/// Community condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommunityMatch {
    /// At least one of these is present.
    Any(Vec<CommunityValue>),
    /// All of these are present.
    All(Vec<CommunityValue>),
}

impl CommunityMatch {
    /// Whether `attrs` satisfy the condition.
    pub fn matches(&self, attrs: &bgp_wire::PathAttributes) -> bool {
        match self {
            CommunityMatch::Any(list) => list.iter().any(|c| c.is_in(attrs)),
            CommunityMatch::All(list) => list.iter().all(|c| c.is_in(attrs)),
        }
    }
}

/// An inclusive range of AS path lengths (as the decision process counts them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LengthRange {
    /// Shortest accepted length.
    pub min: Option<usize>,
    /// Longest accepted length.
    pub max: Option<usize>,
}

/// AS path condition: all given parts must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AsPathMatch {
    /// The path contains this AS anywhere.
    pub contains: Option<u32>,
    /// The route was originated by this AS (last AS of the path).
    pub origin: Option<u32>,
    /// The path length is in this range.
    pub length: Option<LengthRange>,
    /// The path matches this pattern (see the module documentation).
    pub pattern: Option<AsPathPattern>,
}

impl AsPathMatch {
    /// Whether `path` satisfies the condition.
    pub fn matches(&self, path: &AsPath) -> bool {
        if self.contains.is_some_and(|a| !path.contains(a)) {
            return false;
        }
        if self.origin.is_some_and(|a| path.origin_as() != Some(a)) {
            return false;
        }
        if let Some(r) = self.length {
            let len = path.length();
            if r.min.is_some_and(|m| len < m) || r.max.is_some_and(|m| len > m) {
                return false;
            }
        }
        self.pattern.as_ref().is_none_or(|p| p.matches(path))
    }
}

/// One word of an AS path pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatternWord {
    /// This AS.
    Asn(u32),
    /// Any one AS (`?`).
    One,
    /// Any run of ASes, possibly empty (`*`).
    Any,
}

/// An AS path pattern such as `65001 * 65010`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AsPathPattern {
    /// The words.
    pub words: Vec<PatternWord>,
}

/// Why an AS path pattern did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AS path pattern `{pattern}`: `{word}` is neither an AS number, `?` nor `*`")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// The offending word.
    pub word: String,
}

/// One element of a flattened path: an AS, or a set of them.
enum Element<'a> {
    Asn(u32),
    Set(&'a [u32]),
}

impl AsPathPattern {
    /// Whether the whole of `path` matches.
    pub fn matches(&self, path: &AsPath) -> bool {
        let elems: Vec<Element<'_>> = path
            .segments
            .iter()
            .flat_map(|s| -> Box<dyn Iterator<Item = Element<'_>>> {
                match s.kind {
                    SegmentType::Set | SegmentType::ConfedSet => {
                        Box::new(std::iter::once(Element::Set(&s.asns)))
                    }
                    SegmentType::Sequence | SegmentType::ConfedSequence => {
                        Box::new(s.asns.iter().map(|&a| Element::Asn(a)))
                    }
                }
            })
            .collect();
        let word_matches = |w: &PatternWord, e: &Element<'_>| match (w, e) {
            (PatternWord::One, _) => true,
            (PatternWord::Asn(a), Element::Asn(b)) => a == b,
            (PatternWord::Asn(a), Element::Set(s)) => s.contains(a),
            (PatternWord::Any, _) => false,
        };
        // Glob matching by dynamic programming: reach[j] = the first i words match the
        // first j elements. O(words x elements), no backtracking blow-up.
        let n = elems.len();
        let mut reach = vec![false; n + 1];
        reach[0] = true;
        for w in &self.words {
            let mut next = vec![false; n + 1];
            for j in 0..=n {
                next[j] = match w {
                    PatternWord::Any => reach[j] || (j > 0 && next[j - 1]),
                    _ => j > 0 && reach[j - 1] && word_matches(w, &elems[j - 1]),
                };
            }
            reach = next;
        }
        reach[n]
    }
}

impl FromStr for AsPathPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let words = s
            .split_whitespace()
            .map(|w| match w {
                "*" => Ok(PatternWord::Any),
                "?" => Ok(PatternWord::One),
                n => n.parse().map(PatternWord::Asn).map_err(|_| PatternError {
                    pattern: s.to_owned(),
                    word: n.to_owned(),
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(AsPathPattern { words })
    }
}

impl fmt::Display for AsPathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, w) in self.words.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match w {
                PatternWord::Asn(a) => write!(f, "{a}")?,
                PatternWord::One => f.write_str("?")?,
                PatternWord::Any => f.write_str("*")?,
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for AsPathPattern {
    type Error = PatternError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AsPathPattern> for String {
    fn from(p: AsPathPattern) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_wire::{AsSegment, PathAttributes};

    fn pat(s: &str) -> AsPathPattern {
        s.parse().unwrap()
    }

    #[test]
    fn patterns_match_whole_paths() {
        let p = AsPath::from_sequence([65001, 64512, 65010]);
        assert!(pat("65001 *").matches(&p));
        assert!(pat("* 65010").matches(&p));
        assert!(pat("* 64512 *").matches(&p));
        assert!(pat("65001 ? 65010").matches(&p));
        assert!(pat("*").matches(&p));
        assert!(pat("* * 65010").matches(&p));
        assert!(!pat("65001").matches(&p), "anchored at both ends");
        assert!(!pat("* 65001").matches(&p));
        assert!(!pat("? ?").matches(&p));
        assert!(!pat("* 1 *").matches(&p));
        let empty = AsPath::default();
        assert!(pat("").matches(&empty));
        assert!(pat("*").matches(&empty));
        assert!(!pat("?").matches(&empty));
    }

    #[test]
    fn an_as_set_is_one_element_matched_by_its_members() {
        let p = AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentType::Sequence,
                    asns: vec![65001],
                },
                AsSegment {
                    kind: SegmentType::Set,
                    asns: vec![1, 2, 3],
                },
            ],
        };
        assert!(pat("65001 2").matches(&p));
        assert!(pat("65001 ?").matches(&p));
        assert!(!pat("65001 ? ?").matches(&p));
    }

    #[test]
    fn bad_patterns_name_the_word() {
        let e = "65001 _ *".parse::<AsPathPattern>().unwrap_err();
        assert_eq!(e.word, "_");
        assert!(e.to_string().contains("neither an AS number"));
        assert_eq!(pat(" 1  *  ? ").to_string(), "1 * ?");
    }

    #[test]
    fn as_path_conditions_combine() {
        let p = AsPath::from_sequence([65001, 65002, 65003]);
        let m = |s: &str| -> AsPathMatch { serde_json::from_str(s).unwrap() };
        assert!(m(r#"{"contains": 65002}"#).matches(&p));
        assert!(!m(r#"{"contains": 65009}"#).matches(&p));
        assert!(m(r#"{"origin": 65003}"#).matches(&p));
        assert!(!m(r#"{"origin": 65001}"#).matches(&p));
        assert!(m(r#"{"length": {"min": 3, "max": 3}}"#).matches(&p));
        assert!(!m(r#"{"length": {"max": 2}}"#).matches(&p));
        assert!(!m(r#"{"length": {"min": 4}}"#).matches(&p));
        assert!(m(r#"{"contains": 65002, "pattern": "65001 *"}"#).matches(&p));
        assert!(!m(r#"{"contains": 65002, "pattern": "65009 *"}"#).matches(&p));
        assert!(serde_json::from_str::<AsPathMatch>(r#"{"pattern": "a"}"#).is_err());
        assert!(serde_json::from_str::<AsPathMatch>(r#"{"lenght": {}}"#).is_err());
    }

    #[test]
    fn community_any_and_all() {
        let mut a = PathAttributes::default();
        for c in ["65000:1", "1:2:3"] {
            c.parse::<CommunityValue>().unwrap().add_to(&mut a);
        }
        let m = |s: &str| -> CommunityMatch { serde_json::from_str(s).unwrap() };
        assert!(m(r#"{"any": ["65000:9", "1:2:3"]}"#).matches(&a));
        assert!(!m(r#"{"any": ["65000:9"]}"#).matches(&a));
        assert!(m(r#"{"all": ["65000:1", "1:2:3"]}"#).matches(&a));
        assert!(!m(r#"{"all": ["65000:1", "65000:2"]}"#).matches(&a));
    }

    #[test]
    fn conditions_need_all_parts_and_empty_matches_everything() {
        let mut a = PathAttributes {
            as_path: AsPath::from_sequence([65001]),
            ..PathAttributes::default()
        };
        "65000:1".parse::<CommunityValue>().unwrap().add_to(&mut a);
        let list = PrefixList::parse(["10.0.0.0/8 le 32"]).unwrap();
        let lists = BTreeMap::from([("ten".to_owned(), list)]);
        let inside: IpNet = "10.1.0.0/16".parse().unwrap();
        let outside: IpNet = "192.0.2.0/24".parse().unwrap();
        assert!(Conditions::default().matches(&outside, &a, &lists));
        let c: Conditions = serde_json::from_str(
            r#"{"prefix-list": "ten", "community": {"any": ["65000:1"]}, "as-path": {"origin": 65001}}"#,
        )
        .unwrap();
        assert!(c.matches(&inside, &a, &lists));
        assert!(!c.matches(&outside, &a, &lists));
        let unknown = Conditions {
            prefix_list: Some("nope".into()),
            ..Conditions::default()
        };
        assert!(!unknown.matches(&inside, &a, &lists));
    }
}
