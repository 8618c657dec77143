//! The arithmetic of refunds, pure: how much of a sale's commissions a
//! refund takes back.
//!
//! After refunds totalling R of a sale of A, the sale's commissions together
//! hold floor(T * (A - R) / A) of their original total T: rounded down, so a
//! partial refund never leaves a partner a cent the exact share would not
//! give. A full refund reverses them. A sale that earned at several rates
//! (lines of categories with their own rates) is refunded part by part when
//! a refund names its lines (`remaining_by_part`).

/// The commissions' new total after refunds of `refunded` out of `sale`.
pub fn remaining_total(original_total: i64, sale: i64, refunded: i64) -> i64 {
    if sale <= 0 {
        return 0;
    }
    let kept = i128::from(sale - refunded.min(sale));
    (i128::from(original_total) * kept / i128::from(sale)) as i64
}

/// The part of a sale that earned one rate (a category's, or the default):
/// its amount, what it earned for every partner together, and what refunds
/// naming its lines have taken back of the amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub amount_minor: i64,
    pub commission_minor: i64,
    pub refunded_minor: i64,
}

/// The commissions' new total when the sale earned at several rates.
///
/// A refund naming lines takes back from their part only, in proportion to
/// the part's amount; a refund naming none takes from what is left of the
/// order in proportion. So the exact share left is
/// `sum(c * (a - n) / a) * (A - N - U) / (A - N)` of the parts' commissions
/// (c of amounts a, named refunds n summing to N, unnamed U, of an order of
/// A), scaled to what the live commissions held (`original_live` of the
/// parts' total). Each division rounds down, so the result is never a cent
/// more than the exact share. With one part it is `remaining_total`.
pub fn remaining_by_part(original_live: i64, parts: &[Part], sale: i64, refunded: i64) -> i64 {
    let total: i128 = parts.iter().map(|p| i128::from(p.commission_minor)).sum();
    if parts.len() <= 1 || total <= 0 || sale <= 0 {
        return remaining_total(original_live, sale, refunded);
    }
    let named: i128 = parts.iter().map(|p| i128::from(p.refunded_minor)).sum();
    let unnamed = (i128::from(refunded) - named).max(0);
    let rest = i128::from(sale) - named;
    if rest <= 0 || unnamed >= rest {
        return 0;
    }
    let kept: i128 = parts
        .iter()
        .map(|p| {
            let (c, a) = (i128::from(p.commission_minor), i128::from(p.amount_minor));
            if a <= 0 {
                c
            } else {
                c * (a - i128::from(p.refunded_minor).min(a)) / a
            }
        })
        .sum();
    let kept = kept * (rest - unnamed) / rest;
    let live = if i128::from(original_live) == total {
        kept
    } else {
        i128::from(original_live) * kept / total
    };
    live as i64
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

        #[test]
        fn refunds_of_lines_or_of_the_order_never_leave_more_than_the_exact_share(
            parts in proptest::collection::vec((0i64..100_000, 0i64..20_000), 2..5),
            live_share in 1u32..=10_000,
            steps in proptest::collection::vec((proptest::option::of(0usize..5), 0i64..120_000), 1..6),
        ) {
            // Parts of an order (amount, commission), refunded step by step:
            // a step names a part's lines, or (None) the whole order.
            let mut parts: Vec<Part> = parts
                .into_iter()
                .map(|(a, c)| Part { amount_minor: a, commission_minor: c, refunded_minor: 0 })
                .collect();
            let sale: i64 = parts.iter().map(|p| p.amount_minor).sum();
            prop_assume!(sale > 0);
            let total: i64 = parts.iter().map(|p| p.commission_minor).sum();
            // The live commissions' original total: all of it, or what is left
            // after a person rejected some partners' shares.
            let live = (i128::from(total) * i128::from(live_share) / 10_000) as i64;
            let mut refunded = 0i64;
            let mut held = live;
            for (named, amount) in steps {
                let room = sale - refunded;
                let take = match named {
                    Some(i) if i < parts.len() => {
                        let p = &mut parts[i];
                        let t = amount.min(p.amount_minor - p.refunded_minor).min(room);
                        p.refunded_minor += t;
                        t
                    }
                    _ => amount.min(room),
                };
                refunded += take;
                let next = remaining_by_part(live, &parts, sale, refunded);
                prop_assert!(next >= 0);
                prop_assert!(next <= held, "a refund never raises what is held");
                // Exact share, as a fraction: live/total * sum(c(a-n)/a) * (A-N-U)/(A-N).
                // Compared by cross-multiplying over every denominator.
                let named: i128 = parts.iter().map(|p| i128::from(p.refunded_minor)).sum();
                let rest = i128::from(sale) - named;
                let unnamed = i128::from(refunded) - named;
                let mut num: i128 = 0;
                let mut den: i128 = 1;
                for p in &parts {
                    let a = i128::from(p.amount_minor);
                    let (pn, pd) = if a == 0 {
                        (i128::from(p.commission_minor), 1)
                    } else {
                        (i128::from(p.commission_minor) * (a - i128::from(p.refunded_minor)), a)
                    };
                    num = num * pd + pn * den;
                    den *= pd;
                }
                let (num, den) = if rest <= 0 {
                    (0, 1)
                } else {
                    (num * (rest - unnamed) * i128::from(live), den * rest * i128::from(total.max(1)))
                };
                prop_assert!(
                    i128::from(next) * den <= num,
                    "{next} is more than the exact share {num}/{den}"
                );
                // And at most a cent per part (and one for the scaling) below it.
                prop_assert!(
                    (i128::from(next) + parts.len() as i128 + 2) * den > num,
                    "{next} is far below the exact share {num}/{den}"
                );
                held = next;
            }
            if refunded == sale {
                prop_assert_eq!(held, 0);
            }
        }
    }

    #[test]
    fn a_refund_naming_a_line_takes_back_from_its_part_only() {
        // 60.00 of books at 5% (3.00) and 40.00 of toys at 20% (8.00): refunding
        // the toys leaves the books' 3.00; refunding half the order instead
        // leaves half of each.
        let parts = |toys_refunded| {
            [
                Part {
                    amount_minor: 6_000,
                    commission_minor: 300,
                    refunded_minor: 0,
                },
                Part {
                    amount_minor: 4_000,
                    commission_minor: 800,
                    refunded_minor: toys_refunded,
                },
            ]
        };
        assert_eq!(remaining_by_part(1_100, &parts(4_000), 10_000, 4_000), 300);
        assert_eq!(remaining_by_part(1_100, &parts(0), 10_000, 5_000), 550);
        assert_eq!(remaining_by_part(1_100, &parts(4_000), 10_000, 10_000), 0);
        // One partner's half was rejected: the live half keeps half of it.
        assert_eq!(remaining_by_part(550, &parts(4_000), 10_000, 4_000), 150);
        // One part: exactly the single-rate formula.
        assert_eq!(
            remaining_by_part(1_235, &parts(0)[..1], 12_345, 345),
            remaining_total(1_235, 12_345, 345)
        );
    }
}
