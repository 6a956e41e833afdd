//! The hook through which import and export policy (a layer above the RIB) sees routes:
//! the RIB calls a [`RouteFilter`] between the Adj-RIB-In and the Loc-RIB, and between
//! the Loc-RIB and each Adj-RIB-Out, without knowing what policy is.

use ipnet::IpNet;

use super::attr_store::RouteAttrs;

/// What a filter decided for one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Accepted with its attributes unchanged.
    Accept,
    /// Accepted with these attributes.
    Replace(RouteAttrs),
    /// Not accepted.
    Reject,
}

/// An import or export filter.
pub trait RouteFilter {
    /// Decides for `prefix` with attributes `attrs`.
    fn filter(&mut self, prefix: IpNet, attrs: &RouteAttrs) -> Filtered;

    /// Whether the result depends on the attributes only, not on the prefix. The RIB then
    /// runs the filter once per distinct attribute set in a batch instead of once per
    /// route.
    fn prefix_independent(&self) -> bool {
        false
    }
}

/// Accepts everything unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl RouteFilter for AcceptAll {
    fn filter(&mut self, _: IpNet, _: &RouteAttrs) -> Filtered {
        Filtered::Accept
    }
    fn prefix_independent(&self) -> bool {
        true
    }
}

/// Rejects everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct RejectAll;

impl RouteFilter for RejectAll {
    fn filter(&mut self, _: IpNet, _: &RouteAttrs) -> Filtered {
        Filtered::Reject
    }
    fn prefix_independent(&self) -> bool {
        true
    }
}

impl<F: FnMut(IpNet, &RouteAttrs) -> Filtered> RouteFilter for F {
    fn filter(&mut self, prefix: IpNet, attrs: &RouteAttrs) -> Filtered {
        self(prefix, attrs)
    }
}
