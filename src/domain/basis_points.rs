//! Basis points: hundredths of a percent, 0..=10000.

use std::fmt;

/// A share or rate in basis points; 10000 is the whole.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct BasisPoints(u16);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a whole number of basis points from 0 to 10000")]
pub struct BasisPointsError;

impl BasisPoints {
    pub const WHOLE: BasisPoints = BasisPoints(10_000);

    pub fn new(bps: i64) -> Result<Self, BasisPointsError> {
        u16::try_from(bps)
            .ok()
            .filter(|b| *b <= 10_000)
            .map(Self)
            .ok_or(BasisPointsError)
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Debug for BasisPoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}bps", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive() {
        assert_eq!(BasisPoints::new(0).unwrap().get(), 0);
        assert_eq!(BasisPoints::new(10_000).unwrap(), BasisPoints::WHOLE);
        assert!(BasisPoints::new(-1).is_err());
        assert!(BasisPoints::new(10_001).is_err());
        assert!(BasisPoints::new(i64::MAX).is_err());
    }
}
