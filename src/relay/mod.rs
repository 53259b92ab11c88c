//! The back-to-back relay: authentication, routing (rules and pools),
//! sessions and legs. Uses the store; the SIP engine below it knows nothing
//! of either.

pub mod auth;
pub mod catalog;
pub mod core;
pub mod publisher;
pub mod registrar;
pub mod request_view;
pub mod rules;
