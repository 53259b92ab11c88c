//! Authentication of SIP clients: HTTP digest (RFC 7616) with the SIP
//! rules of RFC 3261 §22 and the algorithms of RFC 8760.

pub mod credentials;
pub mod digest;
pub mod limiter;
pub mod nonce;

pub use credentials::ha1;
pub use digest::{AuthOutcome, DigestAuth};
