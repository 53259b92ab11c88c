//! Billing reports (SPEC §4): CDRs and charges totalled per group (client,
//! service, app server or day) and currency.
//!
//! The database does the grouping and counting; money is added up exactly.
//! PostgreSQL sums its NUMERIC amounts itself; SQLite keeps amounts as
//! decimal text, which its SUM would turn into floating point, so there the
//! query groups equal amounts together and they are multiplied and added up
//! here, in `Decimal`. Both arrive as [`Partial`] rows (`store::reports`).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::store::reports::{GroupBy, Partial};
use crate::store::{Money, Timestamp};

/// Totals of one group (or of everything) in one currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Totals {
    /// CDRs counted: one per session, or per segment when a session moved
    /// to another app server.
    pub sessions: i64,
    /// Those that were answered.
    pub answered: i64,
    /// Sum of their durations (answer to end).
    pub duration_ms: i64,
    pub billed_seconds: i64,
    /// Sum of the CDR amounts (time billed by tariff).
    pub time_amount: Money,
    /// Application charges counted.
    pub charge_count: i64,
    pub charge_amount: Money,
    /// `time_amount` + `charge_amount`.
    pub total_amount: Money,
}

/// One line of a report: a group in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReportGroup {
    /// The client, service or app server id, or the day; null for CDRs and
    /// charges that have none (e.g. an unauthenticated call).
    pub key: Option<String>,
    /// Null for CDRs billed without a tariff (amount 0).
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Totals over all groups in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReportTotal {
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    #[serde(flatten)]
    pub totals: Totals,
}

/// A billing report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BillingReport {
    pub group_by: GroupBy,
    /// CDRs that ended, and charges made, at or after this instant.
    pub from: Option<Timestamp>,
    /// …and before this one.
    pub to: Option<Timestamp>,
    /// By key, then currency.
    pub groups: Vec<ReportGroup>,
    /// Per currency, over all groups.
    pub totals: Vec<ReportTotal>,
}

/// Adds up the partial rows of CDRs and charges into a report; `Err` only
/// when an amount outgrows `Decimal`, which no real ledger reaches.
pub fn build(
    group_by: GroupBy,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    cdrs: &[Partial],
    charges: &[Partial],
) -> Result<BillingReport, String> {
    type Key = (Option<String>, Option<String>);
    let mut groups: BTreeMap<Key, Totals> = BTreeMap::new();
    let mut totals: BTreeMap<Option<String>, Totals> = BTreeMap::new();
    for (rows, is_charge) in [(cdrs, false), (charges, true)] {
        for row in rows {
            let key = (row.key.clone(), row.currency.clone());
            add(groups.entry(key).or_default(), row, is_charge)?;
            add(
                totals.entry(row.currency.clone()).or_default(),
                row,
                is_charge,
            )?;
        }
    }
    Ok(BillingReport {
        group_by,
        from,
        to,
        groups: groups
            .into_iter()
            .map(|((key, currency), totals)| ReportGroup {
                key,
                currency,
                totals,
            })
            .collect(),
        totals: totals
            .into_iter()
            .map(|(currency, totals)| ReportTotal { currency, totals })
            .collect(),
    })
}

fn add(t: &mut Totals, row: &Partial, is_charge: bool) -> Result<(), String> {
    let overflow = || "a report amount is too large to add up".to_string();
    let amount = row
        .amount
        .0
        .checked_mul(Decimal::from(row.times))
        .ok_or_else(overflow)?;
    let plus = |m: Money| m.0.checked_add(amount).map(Money).ok_or_else(overflow);
    if is_charge {
        t.charge_count = t.charge_count.saturating_add(row.count);
        t.charge_amount = plus(t.charge_amount)?;
    } else {
        t.sessions = t.sessions.saturating_add(row.count);
        t.answered = t.answered.saturating_add(row.answered);
        t.duration_ms = t.duration_ms.saturating_add(row.duration_ms);
        t.billed_seconds = t.billed_seconds.saturating_add(row.billed_seconds);
        t.time_amount = plus(t.time_amount)?;
    }
    t.total_amount = plus(t.total_amount)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    fn row(key: &str, currency: &str, amount: &str, times: i64, count: i64) -> Partial {
        Partial {
            key: Some(key.into()),
            currency: Some(currency.into()),
            amount: money(amount),
            times,
            count,
            answered: count,
            duration_ms: 1000 * count,
            billed_seconds: 60 * count,
        }
    }

    #[test]
    fn exact_sums_per_group_and_currency() {
        // 0.1 three times is 0.3 exactly, which floats do not manage.
        let cdrs = [
            row("c1", "EUR", "0.1", 3, 3),
            row("c1", "EUR", "1.05", 1, 1),
            row("c2", "USD", "0.7", 2, 2),
        ];
        let charges = [row("c1", "EUR", "0.5", 1, 1), row("c3", "EUR", "2", 1, 1)];
        let r = build(GroupBy::Client, None, None, &cdrs, &charges).unwrap();
        let keys: Vec<_> = r.groups.iter().map(|g| g.key.as_deref()).collect();
        assert_eq!(keys, [Some("c1"), Some("c2"), Some("c3")]);
        let c1 = &r.groups[0].totals;
        assert_eq!(c1.sessions, 4);
        assert_eq!(c1.billed_seconds, 240);
        assert_eq!(c1.time_amount, money("1.35"));
        assert_eq!(c1.charge_count, 1);
        assert_eq!(c1.charge_amount, money("0.5"));
        assert_eq!(c1.total_amount, money("1.85"));
        assert_eq!(r.groups[2].totals.sessions, 0);
        assert_eq!(r.groups[2].totals.total_amount, money("2"));
        let eur = &r.totals[0];
        assert_eq!(eur.currency.as_deref(), Some("EUR"));
        assert_eq!(eur.totals.time_amount, money("1.35"));
        assert_eq!(eur.totals.charge_amount, money("2.5"));
        assert_eq!(eur.totals.total_amount, money("3.85"));
        assert_eq!(r.totals[1].totals.time_amount, money("1.4"));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let huge = row("c1", "EUR", "70000000000000000000000000000", 2, 2);
        assert!(build(GroupBy::Day, None, None, &[huge], &[]).is_err());
    }
}
