//! Fuzzes `frame_length` and `Message::decode`. The first octet picks the codec context
//! (4-octet AS, extended messages, eBGP); the rest is one framed message.
//!
//! Beyond "never panics": a frame that decodes has the length `frame_length` reports;
//! a decoded message re-encodes and decodes again; with 4-octet ASes (no AS4_* folding)
//! and no RFC 7606 finding, to the same value (Partial bits aside).
#![no_main]

use bgp_wire::{CodecContext, Message, frame_length};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fn without_partial(m: Message) -> Message {
    match m {
        Message::Update(mut u) => {
            if let Some(a) = u.attributes.as_mut() {
                for raw in &mut a.unknown {
                    raw.flags.0 &= !bgp_wire::AttributeFlags::PARTIAL;
                }
            }
            Message::Update(u)
        }
        m => m,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let ctx = CodecContext::new(sel & 1 != 0, sel & 2 != 0, sel & 4 != 0);
    let framed = frame_length(frame, &ctx);
    let Ok(m) = Message::decode(frame, &ctx) else {
        return;
    };
    assert_eq!(framed, Ok(Some(frame.len())));
    let clean = match &m {
        Message::Update(u) => u.issues.is_empty(),
        _ => true,
    };
    let mut out = BytesMut::new();
    if m.encode(&ctx, &mut out).is_err() {
        return;
    }
    let again = Message::decode(&out, &ctx);
    assert!(again.is_ok(), "re-encoded {m:?} does not decode: {again:?}");
    if clean && ctx.four_octet_as {
        let again = again.map(without_partial);
        assert_eq!(again, Ok(without_partial(m)));
    }
});
