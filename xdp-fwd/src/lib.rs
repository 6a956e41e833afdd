//! The XDP forwarding program lives in `main.rs` (the `xdp-fwd` binary target, built for
//! `bpfel-unknown-none`). This empty library lets `bgp-ctl` name the crate as a build
//! dependency, so cargo rebuilds the object when it changes.
#![no_std]
