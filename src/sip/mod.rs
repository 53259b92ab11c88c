//! SIP protocol support.

pub mod engine;
pub mod message;
pub mod transaction;
pub mod transport;
