//! AS_PATH (RFC 4271 4.3, RFC 6793): always held with 4-octet AS numbers.
//!
//! Towards and from 2-octet speakers the codec converts with AS_TRANS and AS4_PATH, so
//! everything above the codec sees one representation.

/// Kind of an AS_PATH segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SegmentType {
    /// AS_SET (1): unordered; counts as one hop in path length.
    Set,
    /// AS_SEQUENCE (2).
    Sequence,
    /// AS_CONFED_SEQUENCE (3, RFC 5065): not counted in path length.
    ConfedSequence,
    /// AS_CONFED_SET (4, RFC 5065): not counted in path length.
    ConfedSet,
}

impl SegmentType {
    /// Wire value.
    pub fn code(self) -> u8 {
        match self {
            SegmentType::Set => 1,
            SegmentType::Sequence => 2,
            SegmentType::ConfedSequence => 3,
            SegmentType::ConfedSet => 4,
        }
    }

    /// The segment type for a wire value, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(SegmentType::Set),
            2 => Some(SegmentType::Sequence),
            3 => Some(SegmentType::ConfedSequence),
            4 => Some(SegmentType::ConfedSet),
            _ => None,
        }
    }
}

/// One AS_PATH segment: at most 255 AS numbers on the wire (longer ones are split).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsSegment {
    /// Segment kind.
    pub kind: SegmentType,
    /// AS numbers, in order.
    pub asns: Vec<u32>,
}

/// An AS path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsPath {
    /// Segments, in order (the first is the neighbor's end).
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path made of one AS_SEQUENCE.
    pub fn from_sequence(asns: impl IntoIterator<Item = u32>) -> Self {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![AsSegment {
                kind: SegmentType::Sequence,
                asns,
            }],
        }
    }

    /// Path length for the decision process (RFC 4271 9.1.2.2 a): an AS_SET counts as one,
    /// confederation segments count as zero (RFC 5065).
    pub fn length(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                SegmentType::ConfedSequence | SegmentType::ConfedSet => 0,
            })
            .sum()
    }

    /// The neighboring AS: the first AS of a leading AS_SEQUENCE (RFC 4271 9.1.2.2 c).
    pub fn first_as(&self) -> Option<u32> {
        match self.segments.first() {
            Some(AsSegment {
                kind: SegmentType::Sequence,
                asns,
            }) => asns.first().copied(),
            _ => None,
        }
    }

    /// The AS that originated the route: the last AS of a trailing AS_SEQUENCE.
    pub fn origin_as(&self) -> Option<u32> {
        match self.segments.last() {
            Some(AsSegment {
                kind: SegmentType::Sequence,
                asns,
            }) => asns.last().copied(),
            _ => None,
        }
    }

    /// Whether `asn` appears anywhere in the path (eBGP loop detection).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Prepends `asn` `count` times to the leading AS_SEQUENCE, opening one if needed.
    pub fn prepend(&mut self, asn: u32, count: usize) {
        match self.segments.first_mut() {
            Some(seg) if seg.kind == SegmentType::Sequence => {
                seg.asns.splice(0..0, std::iter::repeat_n(asn, count));
            }
            _ => self.segments.insert(
                0,
                AsSegment {
                    kind: SegmentType::Sequence,
                    asns: vec![asn; count],
                },
            ),
        }
    }

    /// Whether the path has no AS at all (a route originated inside the AS).
    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.asns.is_empty())
    }
}

impl std::fmt::Display for AsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for seg in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let list = seg
                .asns
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" ");
            match seg.kind {
                SegmentType::Sequence => f.write_str(&list)?,
                SegmentType::Set => write!(f, "{{{list}}}")?,
                SegmentType::ConfedSequence => write!(f, "({list})")?,
                SegmentType::ConfedSet => write!(f, "[{list}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_a_set_as_one_and_confederations_as_none() {
        let p = AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentType::ConfedSequence,
                    asns: vec![1, 2],
                },
                AsSegment {
                    kind: SegmentType::Sequence,
                    asns: vec![3, 4],
                },
                AsSegment {
                    kind: SegmentType::Set,
                    asns: vec![5, 6, 7],
                },
            ],
        };
        assert_eq!(p.length(), 3);
        assert_eq!(p.first_as(), None);
        assert_eq!(p.origin_as(), None);
        assert!(p.contains(6));
        assert!(!p.contains(8));
        assert_eq!(p.to_string(), "(1 2) 3 4 {5 6 7}");
    }

    #[test]
    fn prepend_extends_the_leading_sequence_or_opens_one() {
        let mut p = AsPath::from_sequence([65001, 65000]);
        p.prepend(4200000001, 2);
        assert_eq!(p.to_string(), "4200000001 4200000001 65001 65000");
        assert_eq!(p.first_as(), Some(4200000001));
        let mut empty = AsPath::default();
        assert!(empty.is_empty());
        empty.prepend(7, 1);
        assert_eq!(empty.length(), 1);
        assert_eq!(empty.origin_as(), Some(7));
    }
}
