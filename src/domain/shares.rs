//! How an agreement splits each commission among its partners.

use super::{BasisPoints, PartnerId};
use serde::Serialize;

pub const MAX_PARTNERS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Share {
    pub partner_id: PartnerId,
    pub share_bps: BasisPoints,
}

/// Partner shares that sum to exactly 10000 basis points, one per partner,
/// ordered by partner id so allocation is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Shares(Vec<Share>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharesError {
    #[error("must list 1 to 100 partners")]
    Count,
    #[error("partner {0} is listed twice")]
    Duplicate(PartnerId),
    #[error("shares must sum to exactly 10000 basis points, not {0}")]
    Sum(u64),
}

impl Shares {
    pub fn new(mut shares: Vec<Share>) -> Result<Self, SharesError> {
        if shares.is_empty() || shares.len() > MAX_PARTNERS {
            return Err(SharesError::Count);
        }
        shares.sort_by_key(|s| s.partner_id);
        if let Some(w) = shares
            .windows(2)
            .find(|w| w[0].partner_id == w[1].partner_id)
        {
            return Err(SharesError::Duplicate(w[0].partner_id));
        }
        let sum: u64 = shares.iter().map(|s| u64::from(s.share_bps.get())).sum();
        if sum != u64::from(BasisPoints::WHOLE.get()) {
            return Err(SharesError::Sum(sum));
        }
        Ok(Self(shares))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Share> {
        self.0.iter()
    }

    pub fn contains(&self, partner: PartnerId) -> bool {
        self.0.iter().any(|s| s.partner_id == partner)
    }

    pub fn partner_ids(&self) -> Vec<i64> {
        self.0.iter().map(|s| s.partner_id.get()).collect()
    }

    pub fn bps(&self) -> Vec<i32> {
        self.0
            .iter()
            .map(|s| i32::from(s.share_bps.get()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(id: i64, bps: i64) -> Share {
        Share {
            partner_id: PartnerId::from_db(id),
            share_bps: BasisPoints::new(bps).unwrap(),
        }
    }

    #[test]
    fn shares_must_sum_to_the_whole() {
        assert!(Shares::new(vec![share(2, 6667), share(1, 3333)]).is_ok());
        assert_eq!(
            Shares::new(vec![share(1, 3333), share(2, 6666)]),
            Err(SharesError::Sum(9999))
        );
        assert_eq!(Shares::new(vec![]), Err(SharesError::Count));
        assert!(matches!(
            Shares::new(vec![share(1, 5000), share(1, 5000)]),
            Err(SharesError::Duplicate(_))
        ));
    }

    #[test]
    fn shares_are_ordered_by_partner() {
        let s = Shares::new(vec![share(9, 1), share(3, 9999)]).unwrap();
        assert_eq!(s.partner_ids(), vec![3, 9]);
        assert_eq!(s.bps(), vec![9999, 1]);
    }
}
