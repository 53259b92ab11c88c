//! Billing (SPEC §4): tariffs applied to session durations, CDRs, the
//! ledger that writes them without loss, and the closing of sessions a dead
//! process left open.

pub mod cdr;
pub mod csv;
pub mod ledger;
pub mod restart;
pub mod spool;
pub mod tariff;
