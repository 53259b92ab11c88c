//! Switchboard: a SIP relay (B2BUA) with a REST control plane.
//!
//! Layers, dependencies pointing one way: `sip` (message, transport,
//! transaction) knows nothing of sessions or storage; `relay` (the B2BUA)
//! and `api` (REST) use `store`; `app` wires them together.

pub mod allocator;
pub mod api;
pub mod app;
pub mod billing;
pub mod config;
pub mod relay;
pub mod shutdown;
pub mod sip;
pub mod sip_threads;
pub mod store;
pub mod write_behind;
