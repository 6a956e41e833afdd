//! Errors of the netlink layer.

use std::io;

/// What went wrong talking to the kernel over rtnetlink.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// A socket call failed (open, bind, setsockopt, send, receive).
    #[error("netlink socket: {op}: {source}")]
    Socket {
        /// The call that failed.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel refused a request.
    #[error("kernel refused {request}: {source}{}", detail_suffix(.detail))]
    Kernel {
        /// What was asked, e.g. `RTM_NEWROUTE 10.0.0.0/24`.
        request: String,
        /// The errno the kernel answered with.
        source: io::Error,
        /// The kernel's extended-ack message, when it gave one.
        detail: Option<String>,
    },
    /// A dump was interrupted by concurrent changes too many times in a row.
    #[error("{what} dump kept being interrupted by concurrent changes ({attempts} attempts)")]
    DumpInterrupted {
        /// What was dumped.
        what: &'static str,
        /// How many times it was tried.
        attempts: u32,
    },
    /// The kernel closed a request socket or answered out of protocol.
    #[error("netlink: unexpected reply to {request}: {what}")]
    Protocol {
        /// What was asked.
        request: String,
        /// What came back instead.
        what: String,
    },
    /// Called outside a tokio runtime.
    #[error("netlink sockets must be opened within a tokio runtime")]
    NoRuntime,
    /// A route, next hop or neighbor we were asked to write is not expressible.
    #[error("invalid request: {0}")]
    Invalid(String),
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

impl NetlinkError {
    pub(crate) fn socket(op: &'static str, source: io::Error) -> Self {
        Self::Socket { op, source }
    }

    /// The errno of a kernel refusal, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
