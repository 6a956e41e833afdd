//! AS_PATH and AGGREGATOR on the wire, and the RFC 6793 conversion between 4-octet AS
//! numbers and 2-octet speakers (AS_TRANS, AS4_PATH, AS4_AGGREGATOR).

use bytes::{BufMut, BytesMut};

use crate::{AS_TRANS, AsPath, AsSegment, SegmentType};

/// Largest number of ASes in one segment on the wire.
const MAX_SEGMENT: usize = 255;

/// Why an AS_PATH (or AS4_PATH) value is malformed (RFC 7606 7.2, RFC 7607).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathError {
    /// A segment type that is none of 1..=4.
    UnknownSegmentType(u8),
    /// A segment with a Path Segment Length of zero.
    EmptySegment,
    /// The last segment runs past the attribute (overrun) or a single octet is left
    /// after it (underrun).
    Truncated,
    /// AS number 0 (RFC 7607).
    AsZero,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::UnknownSegmentType(t) => write!(f, "unknown segment type {t}"),
            PathError::EmptySegment => f.write_str("segment of length zero"),
            PathError::Truncated => f.write_str("segment overruns the attribute"),
            PathError::AsZero => f.write_str("AS number 0 (RFC 7607)"),
        }
    }
}

/// Decodes an AS_PATH or AS4_PATH value with `as_size`-octet (2 or 4) AS numbers.
pub(crate) fn decode_path(mut value: &[u8], as_size: usize) -> Result<AsPath, PathError> {
    let mut segments = Vec::new();
    while !value.is_empty() {
        let Some((&[kind, count], rest)) = value.split_first_chunk::<2>() else {
            return Err(PathError::Truncated);
        };
        let kind = SegmentType::from_code(kind).ok_or(PathError::UnknownSegmentType(kind))?;
        if count == 0 {
            return Err(PathError::EmptySegment);
        }
        let Some((asns, rest)) = rest.split_at_checked(usize::from(count) * as_size) else {
            return Err(PathError::Truncated);
        };
        let asns: Vec<u32> = if as_size == 4 {
            asns.chunks_exact(4)
                .map(|c| c.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)))
                .collect()
        } else {
            asns.chunks_exact(2)
                .map(|c| c.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)))
                .collect()
        };
        if asns.contains(&0) {
            return Err(PathError::AsZero);
        }
        segments.push(AsSegment { kind, asns });
        value = rest;
    }
    Ok(AsPath { segments })
}

/// The segments as they go on the wire: empty ones dropped, long ones split at 255.
fn wire_segments(path: &AsPath) -> impl Iterator<Item = (SegmentType, &[u32])> {
    path.segments
        .iter()
        .flat_map(|s| s.asns.chunks(MAX_SEGMENT).map(move |c| (s.kind, c)))
}

/// Encoded size of `path` with `as_size`-octet AS numbers.
pub(crate) fn path_len(path: &AsPath, as_size: usize) -> usize {
    wire_segments(path)
        .map(|(_, a)| 2 + a.len() * as_size)
        .sum()
}

/// Writes `path` with 4-octet AS numbers.
pub(crate) fn put_path4(out: &mut BytesMut, path: &AsPath) {
    for (kind, asns) in wire_segments(path) {
        out.put_u8(kind.code());
        out.put_u8(asns.len() as u8);
        for &a in asns {
            out.put_u32(a);
        }
    }
}

/// Writes `path` with 2-octet AS numbers, AS_TRANS for those that do not fit.
pub(crate) fn put_path2(out: &mut BytesMut, path: &AsPath) {
    for (kind, asns) in wire_segments(path) {
        out.put_u8(kind.code());
        out.put_u8(asns.len() as u8);
        for &a in asns {
            out.put_u16(as2(a));
        }
    }
}

/// The 2-octet form of an AS number: itself, or AS_TRANS.
pub(crate) fn as2(asn: u32) -> u16 {
    u16::try_from(asn).unwrap_or(AS_TRANS)
}

/// Whether the path has an AS number that needs 4 octets.
pub(crate) fn needs_as4(path: &AsPath) -> bool {
    path.segments
        .iter()
        .any(|s| s.asns.iter().any(|&a| a > u32::from(u16::MAX)))
}

/// The AS4_PATH to send with a 2-octet AS_PATH: the path without its confederation
/// segments (RFC 6793 4.2.2: they are never carried in AS4_PATH).
pub(crate) fn as4_path_of(path: &AsPath) -> AsPath {
    AsPath {
        segments: path
            .segments
            .iter()
            .filter(|s| matches!(s.kind, SegmentType::Sequence | SegmentType::Set))
            .cloned()
            .collect(),
    }
}

/// RFC 6793 4.2.3: the 4-octet path from a 2-octet AS_PATH and an AS4_PATH.
///
/// When the AS_PATH has fewer ASes than the AS4_PATH (path length counting, an AS_SET as
/// one, confederation segments as none), the AS4_PATH is ignored. Otherwise the leading
/// ASes of the AS_PATH that the AS4_PATH does not cover (prepended by 2-octet speakers,
/// and the leading confederation segments) are put in front of the AS4_PATH.
pub(crate) fn merge_as4_path(as_path: AsPath, as4_path: AsPath) -> AsPath {
    let len = as_path.length();
    let len4 = as4_path.length();
    if len < len4 {
        return as_path;
    }
    let mut need = len - len4;
    let mut segments: Vec<AsSegment> = Vec::new();
    let mut took_from_sequence = false;
    for seg in as_path.segments {
        match seg.kind {
            SegmentType::ConfedSequence | SegmentType::ConfedSet => segments.push(seg),
            _ if need == 0 => break,
            SegmentType::Set => {
                need -= 1;
                took_from_sequence = false;
                segments.push(seg);
            }
            SegmentType::Sequence => {
                let take = need.min(seg.asns.len());
                need -= take;
                took_from_sequence = true;
                segments.push(AsSegment {
                    kind: SegmentType::Sequence,
                    asns: seg.asns.into_iter().take(take).collect(),
                });
            }
        }
    }
    let mut as4 = as4_path.segments.into_iter();
    // Where the ASes a 2-octet speaker prepended meet the AS4_PATH, one sequence.
    if let Some(last) = segments.last_mut() {
        let joins = took_from_sequence
            && last.kind == SegmentType::Sequence
            && as4.as_slice().first().is_some_and(|f| {
                f.kind == SegmentType::Sequence && last.asns.len() + f.asns.len() <= MAX_SEGMENT
            });
        if joins && let Some(first) = as4.next() {
            last.asns.extend(first.asns);
        }
    }
    segments.extend(as4);
    AsPath { segments }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(asns: &[u32]) -> AsSegment {
        AsSegment {
            kind: SegmentType::Sequence,
            asns: asns.to_vec(),
        }
    }

    #[test]
    fn segments_parse_and_malformations_are_named() {
        let p = decode_path(&[2, 2, 0, 1, 0, 2, 1, 1, 0, 3], 2).unwrap();
        assert_eq!(p.to_string(), "1 2 {3}");
        let p = decode_path(&[2, 1, 0, 1, 0, 0], 4).unwrap();
        assert_eq!(p.to_string(), "65536");
        assert_eq!(
            decode_path(&[5, 1, 0, 1], 2),
            Err(PathError::UnknownSegmentType(5))
        );
        assert_eq!(decode_path(&[2, 0], 2), Err(PathError::EmptySegment));
        assert_eq!(decode_path(&[2, 2, 0, 1], 2), Err(PathError::Truncated));
        assert_eq!(decode_path(&[2, 1, 0, 1, 2], 2), Err(PathError::Truncated));
        assert_eq!(decode_path(&[2, 1, 0, 0], 2), Err(PathError::AsZero));
    }

    #[test]
    fn a_long_segment_is_split_at_255() {
        let path = AsPath::from_sequence(1..=300);
        let mut out = BytesMut::new();
        put_path4(&mut out, &path);
        assert_eq!(out.len(), path_len(&path, 4));
        let back = decode_path(&out, 4).unwrap();
        assert_eq!(back.segments.len(), 2);
        assert_eq!(back.length(), 300);
    }

    #[test]
    fn merge_prepends_what_2_octet_speakers_added() {
        // 65001 (2-octet speaker) prepended itself to a path from 4-octet ASes.
        let as_path = AsPath {
            segments: vec![seq(&[65001, 23456, 23456, 3])],
        };
        let as4 = AsPath {
            segments: vec![seq(&[4200000001, 4200000002, 3])],
        };
        let merged = merge_as4_path(as_path, as4);
        assert_eq!(merged.to_string(), "65001 4200000001 4200000002 3");
        assert_eq!(merged.segments.len(), 1);
    }

    #[test]
    fn merge_ignores_a_longer_as4_path_and_keeps_confederations() {
        let as_path = AsPath {
            segments: vec![seq(&[23456])],
        };
        let as4 = AsPath {
            segments: vec![seq(&[4200000001, 7])],
        };
        assert_eq!(merge_as4_path(as_path.clone(), as4).to_string(), "23456");
        let confed = AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentType::ConfedSequence,
                    asns: vec![64512],
                },
                seq(&[23456]),
            ],
        };
        let as4 = AsPath {
            segments: vec![seq(&[4200000001])],
        };
        assert_eq!(
            merge_as4_path(confed, as4).to_string(),
            "(64512) 4200000001"
        );
    }
}
