//! Billing (SPEC §4): tariffs applied to session durations, CDRs,
//! application charges and reports.

pub mod cdr;
pub mod charges;
pub mod csv;
pub mod report;
pub mod tariff;
