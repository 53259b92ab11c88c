//! SIP protocol support.

pub mod message;
