//! Billing (SPEC §4): tariffs applied to session durations, CDRs,
//! application charges and reports; the ledger that writes CDRs and charges
//! without loss, and the closing of sessions a dead process left open.

pub mod cdr;
pub mod charges;
pub mod csv;
pub mod ledger;
pub mod report;
pub mod restart;
pub mod spool;
pub mod tariff;
