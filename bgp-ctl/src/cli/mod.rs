//! The CLI's presentation: human tables for the control API's replies.

pub mod render;
