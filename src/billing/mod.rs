//! Billing (SPEC §4): tariffs applied to session durations, CDRs.

pub mod cdr;
pub mod csv;
pub mod tariff;
