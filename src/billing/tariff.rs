//! Time billing: `Tariff::bill` (SPEC §4).
//!
//! Billed seconds are 0 for an unanswered session, else the duration
//! rounded up to the increment, and at least the minimum. The amount is the
//! setup fee plus billed seconds × price per minute / 60, in exact decimal
//! arithmetic, rounded half-up to 6 decimal places.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::store::tariffs::Tariff;
use crate::store::types::MONEY_SCALE;
use crate::store::Money;

/// What a session costs under a tariff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bill {
    pub billed_seconds: i64,
    pub amount: Money,
}

impl Tariff {
    /// Bills a session that lasted `duration_ms` from answer to end;
    /// `None` when it was never answered.
    pub fn bill(&self, duration_ms: Option<i64>) -> Bill {
        let Some(ms) = duration_ms else {
            return Bill {
                billed_seconds: 0,
                amount: Money(Decimal::ZERO),
            };
        };
        let increment = i64::from(self.increment_seconds.max(1)) * 1000;
        // Whole increments, rounding any started one up (in milliseconds,
        // so 60.001 s at 60/60 is 120 s).
        let ms = ms.max(0);
        let increments = ms / increment + i64::from(ms % increment != 0);
        let rounded = increments * (increment / 1000);
        let billed_seconds = rounded.max(i64::from(self.minimum_seconds.max(0)));
        let time = Decimal::from(billed_seconds) * self.price_per_minute.0 / Decimal::from(60);
        let amount = (self.setup_fee.0 + time)
            .round_dp_with_strategy(MONEY_SCALE, RoundingStrategy::MidpointAwayFromZero);
        Bill {
            billed_seconds,
            amount: Money(amount.normalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Timestamp;

    fn tariff(setup: &str, per_minute: &str, minimum: i32, increment: i32) -> Tariff {
        Tariff {
            id: "t".into(),
            name: "t".into(),
            currency: "EUR".into(),
            setup_fee: Money::parse(setup).unwrap(),
            price_per_minute: Money::parse(per_minute).unwrap(),
            minimum_seconds: minimum,
            increment_seconds: increment,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    /// (setup fee, price per minute, minimum, increment, duration in ms,
    /// billed seconds, amount)
    type Case = (
        &'static str,
        &'static str,
        i32,
        i32,
        Option<i64>,
        i64,
        &'static str,
    );

    #[test]
    fn billing_table() {
        // (setup, per minute, minimum, increment, duration ms, billed s, amount)
        let cases: &[Case] = &[
            // 60/60 around the boundary.
            ("0", "1", 60, 60, Some(1), 60, "1"),
            ("0", "1", 60, 60, Some(59_999), 60, "1"),
            ("0", "1", 60, 60, Some(60_000), 60, "1"),
            ("0", "1", 60, 60, Some(60_001), 120, "2"),
            ("0", "1", 60, 60, Some(119_999), 120, "2"),
            // 30/6.
            ("0", "0.6", 30, 6, Some(1_000), 30, "0.3"),
            ("0", "0.6", 30, 6, Some(30_000), 30, "0.3"),
            ("0", "0.6", 30, 6, Some(30_001), 36, "0.36"),
            ("0", "0.6", 30, 6, Some(36_000), 36, "0.36"),
            ("0", "0.6", 30, 6, Some(36_500), 42, "0.42"),
            // 1/1.
            ("0", "0.0125", 1, 1, Some(0), 1, "0.000208"),
            ("0", "0.0125", 1, 1, Some(61_200), 62, "0.012917"),
            // Unanswered: nothing, not even the setup fee.
            ("0.05", "1", 60, 60, None, 0, "0"),
            // Answered for 0 ms: the minimum and the setup fee.
            ("0.05", "1", 60, 60, Some(0), 60, "1.05"),
            // Setup fee only.
            ("0.10", "0", 0, 1, Some(45_000), 45, "0.1"),
            // Zero price, zero minimum.
            ("0", "0", 0, 1, Some(10_000), 10, "0"),
            // A 10-hour call at 1/1.
            ("0.01", "0.017", 0, 1, Some(36_000_000), 36_000, "10.21"),
            // Half-up at the 6th place: 1 s at 0.000001/min = 0.0000000166…
            ("0", "0.000001", 0, 1, Some(1_000), 1, "0"),
            // 0.0000005 exactly rounds up: 3 s at 0.00001/min = 0.0000005.
            ("0", "0.00001", 0, 1, Some(3_000), 3, "0.000001"),
        ];
        for &(setup, per_minute, minimum, increment, duration, billed, amount) in cases {
            let bill = tariff(setup, per_minute, minimum, increment).bill(duration);
            assert_eq!(
                (bill.billed_seconds, bill.amount),
                (billed, Money::parse(amount).unwrap()),
                "{setup} + {per_minute}/min, {minimum}/{increment}, {duration:?} ms"
            );
        }
    }

    #[test]
    fn amounts_are_exact_in_any_currency() {
        // 1/3 of a cent per minute for 3 minutes is exactly one cent.
        let t = tariff("0", "0.003333", 0, 60);
        assert_eq!(
            t.bill(Some(180_000)).amount,
            Money::parse("0.009999").unwrap()
        );
        let yen = Tariff {
            currency: "JPY".into(),
            ..tariff("10", "3", 60, 60)
        };
        assert_eq!(yen.bill(Some(61_000)).amount, Money::parse("16").unwrap());
    }
}
