//! Money: integer minor units with a currency. No floats on the money path.

use super::{BasisPoints, Currency};
use serde::Serialize;

/// An amount in minor units (cents for EUR, yen for JPY) of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount out of range")]
    Overflow,
    #[error("currencies differ: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Self {
        Self {
            amount_minor,
            currency,
        }
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        self.amount_minor
            .checked_add(other.amount_minor)
            .map(|m| Money::new(m, self.currency))
            .ok_or(MoneyError::Overflow)
    }
}

/// `amount * rate`, rounded half away from zero to a whole minor unit.
pub fn apply_rate(amount_minor: i64, rate: BasisPoints) -> Result<i64, MoneyError> {
    mul_div_round(amount_minor, i64::from(rate.get()), 10_000)
}

/// `value * numerator / denominator`, rounded half away from zero; exact in
/// i128, and an error rather than a wrap when the result leaves i64.
pub fn mul_div_round(value: i64, numerator: i64, denominator: i64) -> Result<i64, MoneyError> {
    if denominator <= 0 {
        return Err(MoneyError::Overflow);
    }
    let product = i128::from(value) * i128::from(numerator);
    let d = i128::from(denominator);
    let half = d / 2;
    let rounded = if product >= 0 {
        (product + half) / d
    } else {
        (product - half) / d
    };
    i64::try_from(rounded).map_err(|_| MoneyError::Overflow)
}

/// Splits `total` among parts weighted by `weights` with the largest
/// remainder method: every part gets the floor of its exact share, and the
/// cents left over go one each to the parts with the largest fractions (ties
/// to the earlier part). The parts always sum to `total`, and each differs
/// from its exact share by less than one minor unit. A negative total is
/// split as its magnitude and negated, so refunds mirror bookings.
///
/// `weights` must not be empty and must not all be zero.
pub fn allocate(total: i64, weights: &[u32]) -> Result<Vec<i64>, MoneyError> {
    let weights: Vec<u64> = weights.iter().map(|w| u64::from(*w)).collect();
    allocate_weighted(total, &weights)
}

/// `allocate` with weights of any size (amounts, when a refund reduces
/// commissions in proportion to what each still holds). A part is never
/// larger than its weight when `total` is at most the sum of the weights.
pub fn allocate_weighted(total: i64, weights: &[u64]) -> Result<Vec<i64>, MoneyError> {
    let sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    if sum == 0 {
        return Err(MoneyError::Overflow);
    }
    let magnitude = u128::from(total.unsigned_abs());
    let mut parts = Vec::with_capacity(weights.len());
    let mut fractions = Vec::with_capacity(weights.len());
    let mut assigned: u128 = 0;
    for (i, w) in weights.iter().enumerate() {
        let exact = magnitude * u128::from(*w);
        let floor = exact / sum;
        assigned += floor;
        parts.push(floor);
        fractions.push((exact % sum, i));
    }
    let mut left = magnitude - assigned;
    // Largest fraction first; on equal fractions the earlier part first.
    fractions.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in fractions {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts
        .into_iter()
        .map(|p| {
            let p = i64::try_from(p).map_err(|_| MoneyError::Overflow)?;
            Ok(if total < 0 { -p } else { p })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bps(n: i64) -> BasisPoints {
        BasisPoints::new(n).unwrap()
    }

    #[test]
    fn rates_round_half_away_from_zero() {
        assert_eq!(apply_rate(12_345, bps(1_000)).unwrap(), 1_235);
        assert_eq!(apply_rate(12_344, bps(1_000)).unwrap(), 1_234);
        assert_eq!(apply_rate(5, bps(1_000)).unwrap(), 1);
        assert_eq!(apply_rate(4, bps(1_000)).unwrap(), 0);
        assert_eq!(apply_rate(-5, bps(1_000)).unwrap(), -1);
        assert_eq!(apply_rate(i64::MAX, bps(10_000)).unwrap(), i64::MAX);
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert_eq!(mul_div_round(i64::MAX, 2, 1), Err(MoneyError::Overflow));
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(
            Money::new(i64::MAX, eur).checked_add(Money::new(1, eur)),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn adding_different_currencies_is_refused() {
        let eur = Currency::parse("EUR").unwrap();
        let usd = Currency::parse("USD").unwrap();
        assert!(matches!(
            Money::new(1, eur).checked_add(Money::new(1, usd)),
            Err(MoneyError::CurrencyMismatch(..))
        ));
    }

    #[test]
    fn an_odd_amount_splits_by_largest_remainder() {
        // 3333/6667 of 101: exact shares 33.66 and 67.33; the spare cent goes
        // to the larger fraction.
        assert_eq!(allocate(101, &[3_333, 6_667]).unwrap(), vec![34, 67]);
        assert_eq!(allocate(1, &[5_000, 5_000]).unwrap(), vec![1, 0]);
        assert_eq!(
            allocate(100, &[3_334, 3_333, 3_333]).unwrap(),
            vec![34, 33, 33]
        );
        assert_eq!(allocate(-101, &[3_333, 6_667]).unwrap(), vec![-34, -67]);
        assert_eq!(allocate(7, &[0, 10_000]).unwrap(), vec![0, 7]);
    }

    proptest! {
        #[test]
        fn parts_always_sum_to_the_whole(
            total in -1_000_000_000_000i64..1_000_000_000_000,
            weights in proptest::collection::vec(0u32..=10_000, 1..8),
        ) {
            prop_assume!(weights.iter().any(|w| *w > 0));
            let parts = allocate(total, &weights).unwrap();
            prop_assert_eq!(parts.iter().sum::<i64>(), total);
            let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
            for (part, w) in parts.iter().zip(&weights) {
                // Never off by a whole unit from the exact share, never of the wrong sign.
                let exact_times_sum = i128::from(total) * i128::from(*w);
                let diff = i128::from(*part) * sum - exact_times_sum;
                prop_assert!(diff.abs() < sum);
                prop_assert!(*part == 0 || part.signum() == total.signum());
            }
        }

        #[test]
        fn a_reduction_never_takes_more_than_a_part_holds(
            parts in proptest::collection::vec(0u64..1_000_000, 1..6),
            fraction in 0u64..=1000,
        ) {
            let held: u64 = parts.iter().sum();
            prop_assume!(held > 0);
            let reduction = (held * fraction / 1000) as i64;
            let taken = allocate_weighted(reduction, &parts).unwrap();
            prop_assert_eq!(taken.iter().sum::<i64>(), reduction);
            for (t, p) in taken.iter().zip(&parts) {
                prop_assert!(*t >= 0 && *t as u64 <= *p);
            }
        }

        #[test]
        fn extreme_totals_split_without_overflow(total in proptest::num::i64::ANY) {
            let parts = allocate(total, &[1, 2, 3]).unwrap();
            prop_assert_eq!(parts.iter().map(|p| i128::from(*p)).sum::<i128>(), i128::from(total));
        }
    }
}
