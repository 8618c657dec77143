//! The arithmetic of refunds, pure: how much of a sale's commissions a
//! refund takes back.
//!
//! After refunds totalling R of a sale of A, the sale's commissions together
//! hold floor(T * (A - R) / A) of their original total T: rounded down, so a
//! partial refund never leaves a partner a cent the exact share would not
//! give. A full refund reverses them.

/// The commissions' new total after refunds of `refunded` out of `sale`.
pub fn remaining_total(original_total: i64, sale: i64, refunded: i64) -> i64 {
    if sale <= 0 {
        return 0;
    }
    let kept = i128::from(sale - refunded.min(sale));
    (i128::from(original_total) * kept / i128::from(sale)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partial_refunds_keep_the_rounded_down_share() {
        // 10% of 12,345 is 1,235 (booked). Refund 345: keeps 1235*12000/12345 = 1200.4 -> 1200.
        assert_eq!(remaining_total(1_235, 12_345, 345), 1_200);
        assert_eq!(remaining_total(1_235, 12_345, 12_345), 0);
        assert_eq!(
            remaining_total(1_235, 12_345, 99_999),
            0,
            "over-refunds cap at the sale"
        );
        assert_eq!(remaining_total(1_235, 12_345, 0), 1_235);
        assert_eq!(remaining_total(500, 0, 10), 0);
    }

    proptest! {
        #[test]
        fn refunds_never_create_a_cent_and_only_take_away(
            original in 0i64..10_000_000,
            sale in 1i64..1_000_000_000,
            steps in proptest::collection::vec(0i64..1_000_000_000, 1..6),
        ) {
            let mut refunded = 0i64;
            let mut held = original;
            for step in steps {
                refunded = (refunded + step).min(sale);
                let next = remaining_total(original, sale, refunded);
                prop_assert!(next <= held, "a refund never raises what is held");
                prop_assert!(next >= 0);
                // Never more than the exact proportional share.
                prop_assert!(i128::from(next) * i128::from(sale)
                    <= i128::from(original) * i128::from(sale - refunded));
                held = next;
            }
            if refunded == sale {
                prop_assert_eq!(held, 0);
            }
        }
    }
}
