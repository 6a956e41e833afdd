//! OPEN message (RFC 4271 4.2, capabilities per RFC 5492).

use std::net::Ipv4Addr;

use crate::{AS_TRANS, Capability, Family, GracefulRestart};

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// BGP version: 4.
    pub version: u8,
    /// My Autonomous System as sent: the real AS if it fits in 16 bits, else AS_TRANS.
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities, in the order received (all capability optional parameters flattened).
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn` (4-octet capable: AS_TRANS in `my_as` when it does not fit) with
    /// the given capabilities; the 4-octet AS capability is added if missing.
    pub fn new(
        asn: u32,
        hold_time: u16,
        bgp_id: Ipv4Addr,
        mut capabilities: Vec<Capability>,
    ) -> Self {
        if !capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
        {
            capabilities.push(Capability::FourOctetAs(asn));
        }
        Open {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The speaker's AS: from the 4-octet AS capability if present (RFC 6793), else `my_as`.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Whether the 4-octet AS capability is present.
    pub fn four_octet_as(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
    }

    /// Families announced with the multiprotocol capability. RFC 4760: a speaker that
    /// announces none supports IPv4 unicast only.
    pub fn families(&self) -> Vec<Family> {
        let fams: Vec<Family> = self
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::MultiProtocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if fams.is_empty() {
            vec![Family::IPV4_UNICAST]
        } else {
            fams
        }
    }

    /// Whether a capability without value (route refresh, extended message, ...) is present.
    pub fn has(&self, cap: &Capability) -> bool {
        self.capabilities.contains(cap)
    }

    /// The graceful restart capability, if present.
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }
}

/// Optional parameter type of capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;
/// Non-extended parameter type that marks RFC 9072 extended optional parameters.
const PARAM_EXTENDED: u8 = 255;

impl Open {
    /// Decodes an OPEN body (without the header), with the checks of RFC 4271 6.2,
    /// RFC 5492, RFC 7607 (AS 0) and RFC 9072 (extended optional parameters length).
    pub(crate) fn decode(body: &[u8]) -> Result<Open, crate::DecodeError> {
        use crate::{
            DecodeError, NotificationCode as N, OpenSubcode as O, capability::decode_capability,
            wire,
        };
        let err =
            |sub: O, data: &[u8], why: String| DecodeError::new(N::OpenMessage(sub), data, why);
        let short = || {
            err(
                O::Unspecific,
                &[],
                format!("OPEN body of {} octets", body.len()),
            )
        };
        let (rest, (version, my_as, hold_time, bgp_id, opt_len)) = nom::Parser::parse(
            &mut (wire::u8, wire::u16, wire::u16, wire::ipv4, wire::u8),
            body,
        )
        .map_err(|_| short())?;
        if version != 4 {
            return Err(err(
                O::UnsupportedVersionNumber,
                &[0, 4],
                format!("BGP version {version}, only 4 is supported"),
            ));
        }
        if my_as == 0 {
            return Err(err(
                O::BadPeerAs,
                &[],
                "My Autonomous System 0 (RFC 7607)".into(),
            ));
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(err(
                O::UnacceptableHoldTime,
                &[],
                format!("hold time {hold_time}, must be 0 or at least 3"),
            ));
        }
        if bgp_id.is_unspecified() {
            return Err(err(
                O::BadBgpIdentifier,
                &[],
                "BGP identifier 0.0.0.0".into(),
            ));
        }
        // RFC 9072: a non-extended length of 255 followed by type 255 announces a
        // 2-octet length, and 2-octet parameter lengths.
        let (rest, extended, params_len) = match (opt_len, rest.first()) {
            (255, Some(&PARAM_EXTENDED)) => {
                let (rest, len) = nom::Parser::parse(&mut (wire::u8, wire::u16), rest)
                    .map(|(r, (_, l))| (r, l))
                    .map_err(|_| short())?;
                (rest, true, usize::from(len))
            }
            _ => (rest, false, usize::from(opt_len)),
        };
        let (trailing, mut params) = wire::bytes(rest, params_len).map_err(|_| {
            err(
                O::Unspecific,
                &[],
                format!("optional parameters length {params_len} overruns the OPEN"),
            )
        })?;
        if !trailing.is_empty() {
            return Err(err(
                O::Unspecific,
                &[],
                format!("{} octets after the optional parameters", trailing.len()),
            ));
        }
        let mut capabilities = Vec::new();
        while !params.is_empty() {
            let header = if extended {
                nom::Parser::parse(&mut (wire::u8, wire::u16), params)
                    .map(|(r, (t, l))| (r, t, usize::from(l)))
            } else {
                nom::Parser::parse(&mut (wire::u8, wire::u8), params)
                    .map(|(r, (t, l))| (r, t, usize::from(l)))
            };
            let (rest, kind, len) = header.map_err(|_| {
                err(
                    O::Unspecific,
                    &[],
                    "optional parameter header cut short".into(),
                )
            })?;
            let (rest, mut caps) = wire::bytes(rest, len).map_err(|_| {
                err(
                    O::Unspecific,
                    &[],
                    format!("optional parameter length {len} overruns the parameters"),
                )
            })?;
            params = rest;
            if kind != PARAM_CAPABILITIES {
                return Err(err(
                    O::UnsupportedOptionalParameter,
                    &[],
                    format!("optional parameter type {kind}"),
                ));
            }
            while !caps.is_empty() {
                let (rest, (code, len)) = nom::Parser::parse(&mut (wire::u8, wire::u8), caps)
                    .map_err(|_| err(O::Unspecific, &[], "capability header cut short".into()))?;
                let (rest, value) = wire::bytes(rest, usize::from(len)).map_err(|_| {
                    err(
                        O::Unspecific,
                        &[],
                        format!("capability {code} length {len} overruns its parameter"),
                    )
                })?;
                caps = rest;
                let cap =
                    decode_capability(code, value).map_err(|why| err(O::Unspecific, &[], why))?;
                if cap == Capability::FourOctetAs(0) {
                    return Err(err(
                        O::BadPeerAs,
                        &[],
                        "4-octet AS capability with AS 0 (RFC 7607)".into(),
                    ));
                }
                capabilities.push(cap);
            }
        }
        Ok(Open {
            version,
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
    }

    /// Writes the OPEN body. Capabilities are grouped into as few optional parameters as
    /// their 255-octet limit allows; RFC 9072 extended lengths are used only when the
    /// parameters do not fit 255 octets.
    pub(crate) fn encode(&self, out: &mut bytes::BytesMut) -> Result<(), crate::EncodeError> {
        use bytes::BufMut;

        use crate::EncodeError;
        for c in &self.capabilities {
            if c.value_len() > 255 {
                return Err(EncodeError::FieldTooLong(format!(
                    "capability {} value of {} octets, at most 255",
                    c.code().code(),
                    c.value_len()
                )));
            }
        }
        out.put_u8(self.version);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_slice(&self.bgp_id.octets());
        // Group capabilities into parameters of at most 255 octets.
        let mut groups: Vec<(usize, usize, usize)> = Vec::new(); // (first, end, octets)
        for (i, c) in self.capabilities.iter().enumerate() {
            let size = 2 + c.value_len();
            match groups.last_mut() {
                Some((_, end, octets)) if *octets + size <= 255 => {
                    *end = i + 1;
                    *octets += size;
                }
                _ => groups.push((i, i + 1, size)),
            }
        }
        let total: usize = groups.iter().map(|g| 2 + g.2).sum();
        if total <= 255 {
            out.put_u8(total as u8);
            for &(first, end, octets) in &groups {
                out.put_u8(PARAM_CAPABILITIES);
                out.put_u8(octets as u8);
                for c in self.capabilities.get(first..end).unwrap_or_default() {
                    c.put(out);
                }
            }
        } else {
            // RFC 9072: one capabilities parameter with a 2-octet length.
            let octets: usize = self.capabilities.iter().map(|c| 2 + c.value_len()).sum();
            let len = u16::try_from(octets + 3).map_err(|_| {
                EncodeError::FieldTooLong(format!("{octets} octets of capabilities"))
            })?;
            out.put_u8(255);
            out.put_u8(PARAM_EXTENDED);
            out.put_u16(len);
            out.put_u8(PARAM_CAPABILITIES);
            out.put_u16(len - 3);
            for c in &self.capabilities {
                c.put(out);
            }
        }
        Ok(())
    }
}
