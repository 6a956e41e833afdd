//! UPDATE decoding with the error handling of RFC 7606.
//!
//! Errors fall in three classes (RFC 7606 2): "session reset" returns a [`DecodeError`];
//! "treat-as-withdraw" and "attribute discard" return the UPDATE with
//! [`AttributeIssue`]s. Every finding also remembers the NOTIFICATION RFC 4271 6.3
//! assigns, because RFC 7606 5.2 turns a treat-as-withdraw into a session reset when the
//! UPDATE carries attributes but no reachable NLRI.

use std::net::Ipv4Addr;

use bytes::Bytes;
use ipnet::IpNet;

use crate::{
    AS_TRANS, Afi, Aggregator, AsPath, AttributeFlags as F, AttributeIssue, AttributeType,
    CodecContext, Community, DecodeError, Family, LargeCommunity, MpNextHop, MpReach, MpUnreach,
    NotificationCode as N, Origin, PathAttributes, RawAttribute, RfcAction, Safi, Update,
    UpdateSubcode as U,
    as4::{self, PathError},
    nlri::{self, PrefixError},
    wire,
};

/// One RFC 7606 finding that does not reset the session by itself.
struct Finding {
    issue: AttributeIssue,
    /// What RFC 4271 would have sent: used when RFC 7606 5.2 escalates.
    notification: DecodeError,
}

/// Wire flags an attribute must carry: optional, transitive.
fn expected_flags(t: AttributeType) -> Option<(bool, bool)> {
    use AttributeType as T;
    match t {
        T::Origin | T::AsPath | T::NextHop | T::LocalPref | T::AtomicAggregate => {
            Some((false, true))
        }
        T::Med | T::OriginatorId | T::ClusterList | T::MpReachNlri | T::MpUnreachNlri => {
            Some((true, false))
        }
        T::Aggregator | T::Communities | T::As4Path | T::As4Aggregator | T::LargeCommunities => {
            Some((true, true))
        }
        T::Other(_) => None,
    }
}

/// Whether `flags` conflict with what type `t` requires: optional and transitive bits
/// (RFC 7606 3.c), and the partial bit, which only optional transitive attributes may
/// carry (RFC 4271 4.3).
fn flags_conflict(t: AttributeType, flags: F) -> bool {
    match expected_flags(t) {
        Some((opt, trans)) => {
            flags.optional() != opt
                || flags.transitive() != trans
                || (flags.partial() && !(opt && trans))
        }
        None => false,
    }
}

/// The family of an MP attribute value, if its first three octets are there.
fn mp_family(value: &[u8]) -> Option<Family> {
    let (rest, afi) = wire::u16(value).ok()?;
    let (_, safi) = wire::u8(rest).ok()?;
    Some(Family {
        afi: Afi::from(afi),
        safi: Safi::from(safi),
    })
}

/// The state of one UPDATE's attribute walk.
struct Walk<'c> {
    ctx: &'c CodecContext,
    attrs: PathAttributes,
    seen: [u64; 4],
    findings: Vec<Finding>,
    mp_reach: Option<MpReach>,
    mp_unreach: Option<MpUnreach>,
    /// AS_PATH as received (2-octet ASNs when `!ctx.four_octet_as`).
    as_path: Option<AsPath>,
    as4_path: Option<AsPath>,
    aggregator: Option<Aggregator>,
    as4_aggregator: Option<Aggregator>,
}

impl Walk<'_> {
    fn seen(&self, code: u8) -> bool {
        self.seen
            .get(usize::from(code / 64))
            .is_some_and(|w| w & (1 << (code % 64)) != 0)
    }

    fn mark(&mut self, code: u8) {
        if let Some(w) = self.seen.get_mut(usize::from(code / 64)) {
            *w |= 1 << (code % 64);
        }
    }

    fn find(
        &mut self,
        attribute: AttributeType,
        action: RfcAction,
        reason: String,
        code: N,
        data: &[u8],
    ) {
        let notification = DecodeError::new(code, data, reason.clone());
        self.findings.push(Finding {
            issue: AttributeIssue {
                attribute,
                action,
                reason,
            },
            notification,
        });
    }

    fn withdraw(&mut self, t: AttributeType, reason: String, sub: U, data: &[u8]) {
        self.find(
            t,
            RfcAction::TreatAsWithdraw,
            reason,
            N::UpdateMessage(sub),
            data,
        );
    }

    fn discard(&mut self, t: AttributeType, reason: String, sub: U, data: &[u8]) {
        self.find(
            t,
            RfcAction::AttributeDiscard,
            reason,
            N::UpdateMessage(sub),
            data,
        );
    }

    /// One attribute, header `whole` minus `value`.
    fn attribute(
        &mut self,
        flags: F,
        code: u8,
        value: &[u8],
        whole: &[u8],
    ) -> Result<(), DecodeError> {
        use AttributeType as T;
        let t = AttributeType::from(code);
        let ebgp = self.ctx.ebgp;
        // Attributes RFC 7606 discards whatever their content when they come from an
        // external peer (7.5 LOCAL_PREF, 7.9 ORIGINATOR_ID, 7.10 CLUSTER_LIST).
        if ebgp && matches!(t, T::LocalPref | T::OriginatorId | T::ClusterList) {
            self.discard(
                t,
                format!("{t:?} from an external peer"),
                U::MalformedAttributeList,
                &[],
            );
            return Ok(());
        }
        // RFC 6793 4.2.2 / 6: between 4-octet speakers, AS4_PATH and AS4_AGGREGATOR are
        // discarded.
        if self.ctx.four_octet_as && matches!(t, T::As4Path | T::As4Aggregator) {
            self.discard(
                t,
                format!("{t:?} from a 4-octet AS speaker"),
                U::OptionalAttributeError,
                whole,
            );
            return Ok(());
        }
        if flags_conflict(t, flags) {
            let reason = format!("{t:?} with flags {:#04x}", flags.0);
            return match t {
                // RFC 7606 5.3 / RFC 4760 7: MP attributes reset (or disable the family).
                T::MpReachNlri | T::MpUnreachNlri => {
                    Err(
                        DecodeError::new(N::UpdateMessage(U::AttributeFlagsError), whole, reason)
                            .for_family(mp_family(value)),
                    )
                }
                // RFC 6793 6: errors in AS4_PATH/AS4_AGGREGATOR discard them.
                T::As4Path | T::As4Aggregator => {
                    self.discard(t, reason, U::AttributeFlagsError, whole);
                    Ok(())
                }
                // RFC 7606 3.c.
                _ => {
                    self.withdraw(t, reason, U::AttributeFlagsError, whole);
                    Ok(())
                }
            };
        }
        let len = value.len();
        match t {
            T::Origin => match value {
                [v] => match Origin::from_code(*v) {
                    Some(o) => self.attrs.origin = o,
                    None => self.withdraw(
                        t,
                        format!("ORIGIN value {v}"),
                        U::InvalidOriginAttribute,
                        whole,
                    ),
                },
                _ => self.withdraw(
                    t,
                    format!("ORIGIN length {len}, expected 1"),
                    U::AttributeLengthError,
                    whole,
                ),
            },
            T::AsPath => {
                let size = if self.ctx.four_octet_as { 4 } else { 2 };
                match as4::decode_path(value, size) {
                    Ok(p) => self.as_path = Some(p),
                    Err(e) => self.withdraw(t, format!("AS_PATH: {e}"), U::MalformedAsPath, &[]),
                }
            }
            T::NextHop => match wire::ipv4(value) {
                Ok((&[], a)) => self.attrs.next_hop = Some(a),
                _ => self.withdraw(
                    t,
                    format!("NEXT_HOP length {len}, expected 4"),
                    U::AttributeLengthError,
                    whole,
                ),
            },
            T::Med => match wire::u32(value) {
                Ok((&[], v)) => self.attrs.med = Some(v),
                _ => self.withdraw(
                    t,
                    format!("MULTI_EXIT_DISC length {len}, expected 4"),
                    U::AttributeLengthError,
                    whole,
                ),
            },
            T::LocalPref => match wire::u32(value) {
                Ok((&[], v)) => self.attrs.local_pref = Some(v),
                _ => self.withdraw(
                    t,
                    format!("LOCAL_PREF length {len}, expected 4"),
                    U::AttributeLengthError,
                    whole,
                ),
            },
            T::AtomicAggregate => {
                if len == 0 {
                    self.attrs.atomic_aggregate = true;
                } else {
                    self.discard(
                        t,
                        format!("ATOMIC_AGGREGATE length {len}, expected 0"),
                        U::AttributeLengthError,
                        whole,
                    );
                }
            }
            T::Aggregator => {
                let size = if self.ctx.four_octet_as { 8 } else { 6 };
                match decode_aggregator(value, size) {
                    Ok(a) => self.aggregator = Some(a),
                    Err(why) => self.discard(
                        t,
                        format!("AGGREGATOR: {why}"),
                        U::AttributeLengthError,
                        whole,
                    ),
                }
            }
            T::Communities => {
                if len == 0 || !len.is_multiple_of(4) {
                    self.withdraw(
                        t,
                        format!("COMMUNITIES length {len}, not a non-zero multiple of 4"),
                        U::OptionalAttributeError,
                        whole,
                    );
                } else {
                    self.attrs.communities =
                        value.chunks_exact(4).map(|c| Community(be32(c))).collect();
                }
            }
            T::OriginatorId => match wire::ipv4(value) {
                Ok((&[], a)) => self.attrs.originator_id = Some(a),
                _ => self.withdraw(
                    t,
                    format!("ORIGINATOR_ID length {len}, expected 4"),
                    U::OptionalAttributeError,
                    whole,
                ),
            },
            T::ClusterList => {
                if len == 0 || !len.is_multiple_of(4) {
                    self.withdraw(
                        t,
                        format!("CLUSTER_LIST length {len}, not a non-zero multiple of 4"),
                        U::OptionalAttributeError,
                        whole,
                    );
                } else {
                    self.attrs.cluster_list = value
                        .chunks_exact(4)
                        .map(|c| Ipv4Addr::from(be32(c)))
                        .collect();
                }
            }
            T::MpReachNlri => {
                let family = mp_family(value);
                self.mp_reach = decode_mp_reach(value).map_err(|why| {
                    DecodeError::new(
                        N::UpdateMessage(U::OptionalAttributeError),
                        whole,
                        format!("MP_REACH_NLRI: {why}"),
                    )
                    .for_family(family)
                })?;
            }
            T::MpUnreachNlri => {
                let family = mp_family(value);
                self.mp_unreach = decode_mp_unreach(value).map_err(|why| {
                    DecodeError::new(
                        N::UpdateMessage(U::OptionalAttributeError),
                        whole,
                        format!("MP_UNREACH_NLRI: {why}"),
                    )
                    .for_family(family)
                })?;
            }
            T::As4Path => match as4::decode_path(value, 4) {
                Ok(p) => {
                    let before = p.segments.len();
                    let p = as4::as4_path_of(&p);
                    if p.segments.len() != before {
                        // RFC 6793 6: confederation segments in AS4_PATH are dropped.
                        self.discard(
                            t,
                            "AS4_PATH confederation segments".to_owned(),
                            U::OptionalAttributeError,
                            whole,
                        );
                    }
                    self.as4_path = Some(p);
                }
                // RFC 7607: AS 0 in AS4_PATH is treat-as-withdraw like in AS_PATH.
                Err(PathError::AsZero) => self.withdraw(
                    t,
                    "AS4_PATH: AS number 0 (RFC 7607)".to_owned(),
                    U::MalformedAsPath,
                    &[],
                ),
                // RFC 6793 6: any other malformed AS4_PATH is discarded.
                Err(e) => self.discard(
                    t,
                    format!("AS4_PATH: {e}"),
                    U::OptionalAttributeError,
                    whole,
                ),
            },
            T::As4Aggregator => match decode_aggregator(value, 8) {
                Ok(a) => self.as4_aggregator = Some(a),
                Err(why) => self.discard(
                    t,
                    format!("AS4_AGGREGATOR: {why}"),
                    U::OptionalAttributeError,
                    whole,
                ),
            },
            T::LargeCommunities => {
                if len == 0 || !len.is_multiple_of(12) {
                    self.withdraw(
                        t,
                        format!("LARGE_COMMUNITY length {len}, not a non-zero multiple of 12"),
                        U::OptionalAttributeError,
                        whole,
                    );
                } else {
                    self.attrs.large_communities = value
                        .chunks_exact(12)
                        .map(|c| LargeCommunity {
                            global: be32(c.get(0..4).unwrap_or_default()),
                            local1: be32(c.get(4..8).unwrap_or_default()),
                            local2: be32(c.get(8..12).unwrap_or_default()),
                        })
                        .collect();
                }
            }
            T::Other(_) => {
                if !flags.optional() {
                    // RFC 4271 6.3: an unrecognized well-known attribute resets.
                    return Err(DecodeError::new(
                        N::UpdateMessage(U::UnrecognizedWellKnownAttribute),
                        whole,
                        format!("unrecognized well-known attribute {code}"),
                    ));
                }
                if flags.transitive() {
                    self.attrs.unknown.push(RawAttribute {
                        flags: F(flags.0 & !F::EXTENDED_LENGTH),
                        type_code: code,
                        value: Bytes::copy_from_slice(value),
                    });
                }
                // Unrecognized optional non-transitive attributes are quietly ignored.
            }
        }
        Ok(())
    }
}

/// A big-endian u32 from up to four octets.
fn be32(c: &[u8]) -> u32 {
    c.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b))
}

/// AGGREGATOR (`size` 6 or 8) or AS4_AGGREGATOR (8).
fn decode_aggregator(value: &[u8], size: usize) -> Result<Aggregator, String> {
    if value.len() != size {
        return Err(format!("length {}, expected {size}", value.len()));
    }
    let (asn, addr) = value.split_at_checked(size - 4).unwrap_or_default();
    let asn = be32(asn);
    if asn == 0 {
        return Err("AS number 0 (RFC 7607)".to_owned());
    }
    Ok(Aggregator {
        asn,
        address: Ipv4Addr::from(be32(addr)),
    })
}

/// Whether this codec parses the NLRI of `family` (others are ignored: they were not
/// negotiated by this speaker).
fn handled(family: Family) -> bool {
    family == Family::IPV4_UNICAST || family == Family::IPV6_UNICAST
}

fn prefixes(family: Family, buf: &[u8], out: &mut Vec<IpNet>) -> Result<(), PrefixError> {
    if family.afi == Afi::Ipv4 {
        nlri::decode_ipv4_nets(buf, out)
    } else {
        nlri::decode_ipv6(buf, out)
    }
}

/// MP_REACH_NLRI (RFC 4760 3): `None` for a family this codec does not handle.
fn decode_mp_reach(value: &[u8]) -> Result<Option<MpReach>, String> {
    let short = || format!("length {}, at least 5 needed", value.len());
    let (rest, afi) = wire::u16(value).map_err(|_| short())?;
    let (rest, safi) = wire::u8(rest).map_err(|_| short())?;
    let (rest, nh_len) = wire::u8(rest).map_err(|_| short())?;
    let family = Family {
        afi: Afi::from(afi),
        safi: Safi::from(safi),
    };
    let (rest, nh) = wire::bytes(rest, usize::from(nh_len))
        .map_err(|_| format!("next hop length {nh_len} overruns the attribute"))?;
    let (rest, _reserved) = wire::u8(rest).map_err(|_| short())?;
    if !handled(family) {
        return Ok(None);
    }
    // RFC 2545 and RFC 8950: 16 octets (global) or 32 (global and link-local) for IPv6;
    // 4 for IPv4, or an IPv6 next hop for IPv4 NLRI.
    let next_hop = match (family.afi, nh_len) {
        (Afi::Ipv4, 4) => wire::ipv4(nh).map(|(_, a)| MpNextHop::Ipv4(a)).ok(),
        (_, 16) => wire::ipv6(nh)
            .map(|(_, global)| MpNextHop::Ipv6 {
                global,
                link_local: None,
            })
            .ok(),
        (_, 32) => ipv6_pair(nh),
        _ => None,
    }
    .ok_or_else(|| format!("next hop length {nh_len} is not valid for {family}"))?;
    let mut nlri = Vec::new();
    prefixes(family, rest, &mut nlri).map_err(|e| format!("NLRI: {e}"))?;
    Ok(Some(MpReach {
        family,
        next_hop,
        nlri,
    }))
}

/// MP_UNREACH_NLRI (RFC 4760 4): `None` for a family this codec does not handle.
fn decode_mp_unreach(value: &[u8]) -> Result<Option<MpUnreach>, String> {
    let Some(family) = mp_family(value) else {
        return Err(format!("length {}, at least 3 needed", value.len()));
    };
    if !handled(family) {
        return Ok(None);
    }
    let mut withdrawn = Vec::new();
    prefixes(family, value.get(3..).unwrap_or_default(), &mut withdrawn)
        .map_err(|e| format!("withdrawn routes: {e}"))?;
    Ok(Some(MpUnreach { family, withdrawn }))
}

/// A global and a link-local IPv6 next hop (RFC 2545 3).
fn ipv6_pair(nh: &[u8]) -> Option<MpNextHop> {
    let (rest, global) = wire::ipv6(nh).ok()?;
    let (_, link_local) = wire::ipv6(rest).ok()?;
    Some(MpNextHop::Ipv6 {
        global,
        link_local: Some(link_local),
    })
}

/// Decodes an UPDATE body (the message without its 19-octet header).
pub(crate) fn decode_update(body: &[u8], ctx: &CodecContext) -> Result<Update, DecodeError> {
    // RFC 4271 6.3 and RFC 7606 3.b: lengths that do not fit the message reset.
    let list_error = |why: &str| {
        DecodeError::new(
            N::UpdateMessage(U::MalformedAttributeList),
            &[],
            why.to_owned(),
        )
    };
    let (rest, wlen) = wire::u16(body).map_err(|_| list_error("no Withdrawn Routes Length"))?;
    let (rest, withdrawn_field) = wire::bytes(rest, usize::from(wlen))
        .map_err(|_| list_error("Withdrawn Routes Length overruns the message"))?;
    let (rest, alen) = wire::u16(rest).map_err(|_| list_error("no Total Path Attribute Length"))?;
    let (nlri_field, attr_field) = wire::bytes(rest, usize::from(alen))
        .map_err(|_| list_error("Total Path Attribute Length overruns the message"))?;

    // RFC 7606 5.3: NLRI that cannot be parsed reset the session.
    let network_error = |field: &str, e: PrefixError| {
        DecodeError::new(
            N::UpdateMessage(U::InvalidNetworkField),
            &[],
            format!("{field}: {e}"),
        )
    };
    let mut withdrawn = Vec::new();
    nlri::decode_ipv4(withdrawn_field, &mut withdrawn)
        .map_err(|e| network_error("withdrawn routes", e))?;
    let mut nlri = Vec::new();
    nlri::decode_ipv4(nlri_field, &mut nlri).map_err(|e| network_error("NLRI", e))?;

    let mut walk = Walk {
        ctx,
        attrs: PathAttributes::default(),
        seen: [0; 4],
        findings: Vec::new(),
        mp_reach: None,
        mp_unreach: None,
        as_path: None,
        as4_path: None,
        aggregator: None,
        as4_aggregator: None,
    };
    let mut rest = attr_field;
    while !rest.is_empty() {
        let flags = F(rest.first().copied().unwrap_or_default());
        let code = rest.get(1).copied();
        let header = if flags.extended_length() { 4 } else { 3 };
        let value_len = match rest.get(2..header) {
            Some([l]) => Some(usize::from(*l)),
            Some([h, l]) => Some(usize::from(*h) << 8 | usize::from(*l)),
            _ => None,
        };
        let t = AttributeType::from(code.unwrap_or_default());
        let Some((whole, after)) = value_len.and_then(|l| rest.split_at_checked(header + l)) else {
            // RFC 7606 4: an attribute header or value that runs past the Total Path
            // Attribute Length is treat-as-withdraw; the NLRI field is still found from
            // that length. An MP attribute cut short hides routes: that resets.
            let reason = match value_len {
                None => format!(
                    "{} octets left, too few for an attribute header",
                    rest.len()
                ),
                Some(l) => format!("{t:?} length {l} overruns the path attributes"),
            };
            if matches!(t, AttributeType::MpReachNlri | AttributeType::MpUnreachNlri)
                && value_len.is_some()
            {
                return Err(DecodeError::new(
                    N::UpdateMessage(U::AttributeLengthError),
                    rest,
                    reason,
                )
                .for_family(mp_family(rest.get(header..).unwrap_or_default())));
            }
            walk.withdraw(t, reason, U::AttributeLengthError, rest);
            break;
        };
        rest = after;
        let code = code.unwrap_or_default();
        let value = whole.get(header..).unwrap_or_default();
        if walk.seen(code) {
            // RFC 7606 3.g.
            if matches!(t, AttributeType::MpReachNlri | AttributeType::MpUnreachNlri) {
                return Err(DecodeError::new(
                    N::UpdateMessage(U::MalformedAttributeList),
                    &[],
                    format!("{t:?} appears more than once"),
                ));
            }
            walk.discard(
                t,
                format!("{t:?} appears more than once"),
                U::MalformedAttributeList,
                &[],
            );
            continue;
        }
        walk.mark(code);
        walk.attribute(flags, code, value, whole)?;
    }

    let seen = walk.seen;
    let mut attrs = walk.attrs;
    // RFC 6793 4.2.3: rebuild the 4-octet path and aggregator from a 2-octet speaker.
    if ctx.four_octet_as {
        attrs.as_path = walk.as_path.unwrap_or_default();
        attrs.aggregator = walk.aggregator;
    } else {
        let mut as4_path = walk.as4_path;
        attrs.aggregator = match (walk.aggregator, walk.as4_aggregator) {
            (Some(a), _) if a.asn != u32::from(AS_TRANS) => {
                // Aggregated by a 2-octet speaker: AS4_AGGREGATOR and AS4_PATH are stale.
                as4_path = None;
                Some(a)
            }
            (Some(_), Some(a4)) => Some(a4),
            (a, _) => a,
        };
        attrs.as_path = match (walk.as_path, as4_path) {
            (Some(p), Some(p4)) => as4::merge_as4_path(p, p4),
            (p, _) => p.unwrap_or_default(),
        };
    }

    let reachable = !nlri.is_empty() || walk.mp_reach.is_some();
    let seen_ok = |t: AttributeType| {
        let code = t.code();
        seen.get(usize::from(code / 64))
            .is_some_and(|w| w & (1 << (code % 64)) != 0)
    };
    // RFC 7606 3.d (RFC 4271 6.3): missing well-known mandatory attributes. NEXT_HOP is
    // mandatory only with routes in the NLRI field (RFC 4760 3).
    let mut missing = Vec::new();
    if reachable {
        for t in [AttributeType::Origin, AttributeType::AsPath] {
            if !seen_ok(t) {
                missing.push(t);
            }
        }
        if !nlri.is_empty() && !seen_ok(AttributeType::NextHop) {
            missing.push(AttributeType::NextHop);
        }
    }
    let mut findings = walk.findings;
    for t in missing {
        let reason = format!("missing well-known attribute {t:?}");
        findings.push(Finding {
            notification: DecodeError::new(
                N::UpdateMessage(U::MissingWellKnownAttribute),
                &[t.code()],
                reason.clone(),
            ),
            issue: AttributeIssue {
                attribute: t,
                action: RfcAction::TreatAsWithdraw,
                reason,
            },
        });
    }
    // RFC 7606 5.2: attributes without reachable NLRI and an error that is not attribute
    // discard: the NLRI may have been lost in the error, so the session resets.
    if !reachable
        && let Some(f) = findings
            .iter()
            .find(|f| f.issue.action == RfcAction::TreatAsWithdraw)
    {
        let mut e = f.notification.clone();
        e.reason = format!(
            "{} in an UPDATE without reachable NLRI (RFC 7606 5.2)",
            e.reason
        );
        return Err(e);
    }
    Ok(Update {
        withdrawn,
        // An UPDATE without a path attribute field has no attributes (a withdrawal, or
        // routes that 3.d withdraws).
        attributes: (!attr_field.is_empty()).then_some(attrs),
        nlri,
        mp_reach: walk.mp_reach,
        mp_unreach: walk.mp_unreach,
        issues: findings.into_iter().map(|f| f.issue).collect(),
    })
}
