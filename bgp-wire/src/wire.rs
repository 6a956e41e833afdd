//! Reading primitives (nom parsers with no error payload: callers know the context and
//! build the NOTIFICATION) and writing helpers shared by the message codecs.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use nom::{
    IResult, Parser,
    bytes::complete::take,
    number::complete::{be_u8, be_u16, be_u32, be_u128},
};

/// A nom result that carries no error detail.
pub(crate) type Res<'a, T> = IResult<&'a [u8], T, ()>;

/// One octet.
pub(crate) fn u8(i: &[u8]) -> Res<'_, u8> {
    be_u8(i)
}

/// Two octets, network order.
pub(crate) fn u16(i: &[u8]) -> Res<'_, u16> {
    be_u16(i)
}

/// Four octets, network order.
pub(crate) fn u32(i: &[u8]) -> Res<'_, u32> {
    be_u32(i)
}

/// An IPv4 address.
pub(crate) fn ipv4(i: &[u8]) -> Res<'_, Ipv4Addr> {
    be_u32.map(Ipv4Addr::from).parse(i)
}

/// An IPv6 address.
pub(crate) fn ipv6(i: &[u8]) -> Res<'_, Ipv6Addr> {
    be_u128.map(Ipv6Addr::from).parse(i)
}

/// `n` octets.
pub(crate) fn bytes(i: &[u8], n: usize) -> Res<'_, &[u8]> {
    take(n).parse(i)
}

/// Writes a big-endian u16 at `pos` of `out` (a length field written as a placeholder).
pub(crate) fn patch_u16(out: &mut BytesMut, pos: usize, value: u16) {
    if let Some(slot) = out.get_mut(pos..pos + 2) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
}

/// Writes a path attribute header; the extended-length flag is set when `len` needs it.
pub(crate) fn put_attr_header(out: &mut BytesMut, flags: u8, code: u8, len: usize) {
    use crate::AttributeFlags as F;
    let flags = flags & !F::EXTENDED_LENGTH;
    match u8::try_from(len) {
        Ok(short) => {
            out.put_u8(flags);
            out.put_u8(code);
            out.put_u8(short);
        }
        Err(_) => {
            out.put_u8(flags | F::EXTENDED_LENGTH);
            out.put_u8(code);
            out.put_u16(u16::try_from(len).unwrap_or(u16::MAX));
        }
    }
}
