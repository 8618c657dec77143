//! A partner's membership of a program, and the moves between its states.
//!
//! A partner joins by invitation (invited -> active when it accepts) or by
//! application to a public program (applied -> active when the program
//! approves). Declined, rejected, deactivated and banned end a membership;
//! each move is kept as an event with who, when and why. Only an active
//! partner may be named in an agreement, earn new commissions, have its
//! links followed, or be seen with its contact details by the program.

use super::text_enum::text_enum;
use chrono::{DateTime, Duration, Utc};

text_enum! {
    /// Where a partner stands with a program.
    pub enum EnrollmentStatus("enrollment status") {
        /// The program invited it; waiting for the partner.
        Invited = "invited",
        /// It applied to a public program; waiting for the program.
        Applied = "applied",
        Active = "active",
        /// The partner declined the invitation.
        Declined = "declined",
        /// The program turned the application down.
        Rejected = "rejected",
        /// The program ended the membership; history and balance stay.
        Deactivated = "deactivated",
        /// Ended for cause: its pending commissions are held for review.
        Banned = "banned",
    }
}

text_enum! {
    /// What a partner or a program does to a membership.
    pub enum EnrollmentAction("enrollment action") {
        Invite = "invite",
        Apply = "apply",
        Accept = "accept",
        Decline = "decline",
        Approve = "approve",
        Reject = "reject",
        Deactivate = "deactivate",
        Ban = "ban",
    }
}

text_enum! {
    /// Why a program rejects an application or ends a membership; the
    /// partner sees it with the program's note.
    pub enum EnrollmentReason("enrollment reason") {
        /// The partner's audience or content does not fit the program.
        NotAFit = "not_a_fit",
        /// Not enough information to decide.
        IncompleteProfile = "incomplete_profile",
        /// Traffic of poor quality (bots, incentivised clicks).
        TrafficQuality = "traffic_quality",
        /// Fraud, or an attempt at it.
        Fraud = "fraud",
        /// The program's terms were broken (brand bidding, spam, ...).
        TermsViolation = "terms_violation",
        /// No activity for a long time.
        Inactive = "inactive",
        /// The program is closing or not taking partners now.
        ProgramClosed = "program_closed",
        Other = "other",
    }
}

impl EnrollmentStatus {
    /// Whether the membership has ended (the partner may still be paid what
    /// it earned while it was active).
    pub fn has_ended(self) -> bool {
        matches!(
            self,
            EnrollmentStatus::Deactivated | EnrollmentStatus::Banned
        )
    }
}

impl EnrollmentAction {
    /// Whether the partner (not the program) takes this action.
    pub fn by_partner(self) -> bool {
        matches!(
            self,
            EnrollmentAction::Apply | EnrollmentAction::Accept | EnrollmentAction::Decline
        )
    }
}

/// Why a move is not possible now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a {from} partner cannot be moved by `{action}`")]
    NotFrom {
        from: EnrollmentStatus,
        action: EnrollmentAction,
    },
    #[error("the partner may apply again from {0}")]
    CoolingDown(DateTime<Utc>),
    #[error("the partner is already {0}")]
    Already(EnrollmentStatus),
}

/// Where a membership stands, as far as the moves care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub status: EnrollmentStatus,
    /// After a rejection, applying again waits until then.
    pub reapply_after: Option<DateTime<Utc>>,
}

/// The status `action` moves a membership to (`None`: there is none yet),
/// or why it cannot.
pub fn transition(
    current: Option<Standing>,
    action: EnrollmentAction,
    now: DateTime<Utc>,
) -> Result<EnrollmentStatus, TransitionError> {
    use EnrollmentAction as A;
    use EnrollmentStatus as S;
    let from = current.map(|c| c.status);
    let not = |from: EnrollmentStatus| TransitionError::NotFrom { from, action };
    match (action, from) {
        (A::Invite, None | Some(S::Declined | S::Rejected | S::Deactivated)) => Ok(S::Invited),
        (A::Invite, Some(s @ (S::Invited | S::Active))) => Err(TransitionError::Already(s)),
        (A::Apply, None | Some(S::Declined | S::Deactivated)) => Ok(S::Applied),
        (A::Apply, Some(S::Rejected)) => match current.and_then(|c| c.reapply_after) {
            Some(after) if now < after => Err(TransitionError::CoolingDown(after)),
            _ => Ok(S::Applied),
        },
        (A::Apply, Some(s @ (S::Applied | S::Active | S::Invited))) => {
            Err(TransitionError::Already(s))
        }
        (A::Accept, Some(S::Invited)) => Ok(S::Active),
        (A::Decline, Some(S::Invited)) => Ok(S::Declined),
        (A::Approve, Some(S::Applied)) => Ok(S::Active),
        (A::Reject, Some(S::Applied)) => Ok(S::Rejected),
        (A::Deactivate, Some(S::Active)) => Ok(S::Deactivated),
        (A::Ban, Some(S::Invited | S::Applied | S::Active | S::Deactivated)) => Ok(S::Banned),
        (_, Some(s)) => Err(not(s)),
        (_, None) => Err(TransitionError::NotFrom {
            from: S::Invited,
            action,
        }),
    }
}

/// When a rejected partner may apply again.
pub fn reapply_after(now: DateTime<Utc>, cooldown_days: i32) -> DateTime<Utc> {
    now + Duration::days(i64::from(cooldown_days))
}

/// Whether a partner with this membership earns on a conversion that
/// happened at `at`: while active, or before its membership ended.
pub fn earns_at(
    status: EnrollmentStatus,
    ended_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> bool {
    match status {
        EnrollmentStatus::Active => true,
        s if s.has_ended() => ended_at.is_some_and(|end| at < end),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EnrollmentAction as A;
    use EnrollmentStatus as S;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap()
    }

    fn at(status: EnrollmentStatus) -> Option<Standing> {
        Some(Standing {
            status,
            reapply_after: None,
        })
    }

    #[test]
    fn invitation_and_application_lead_to_active() {
        assert_eq!(transition(None, A::Invite, now()), Ok(S::Invited));
        assert_eq!(transition(at(S::Invited), A::Accept, now()), Ok(S::Active));
        assert_eq!(
            transition(at(S::Invited), A::Decline, now()),
            Ok(S::Declined)
        );
        assert_eq!(transition(None, A::Apply, now()), Ok(S::Applied));
        assert_eq!(transition(at(S::Applied), A::Approve, now()), Ok(S::Active));
        assert_eq!(
            transition(at(S::Applied), A::Reject, now()),
            Ok(S::Rejected)
        );
        assert_eq!(
            transition(at(S::Active), A::Deactivate, now()),
            Ok(S::Deactivated)
        );
        assert_eq!(transition(at(S::Active), A::Ban, now()), Ok(S::Banned));
    }

    #[test]
    fn a_ban_is_final_and_nobody_accepts_for_the_partner() {
        for action in EnrollmentAction::ALL {
            assert!(
                transition(at(S::Banned), *action, now()).is_err(),
                "{action}"
            );
        }
        assert!(transition(at(S::Applied), A::Accept, now()).is_err());
        assert!(transition(None, A::Accept, now()).is_err());
        assert!(transition(at(S::Active), A::Approve, now()).is_err());
        assert_eq!(
            transition(at(S::Active), A::Invite, now()),
            Err(TransitionError::Already(S::Active))
        );
    }

    #[test]
    fn a_rejected_partner_applies_again_only_after_the_cooldown() {
        let rejected = Some(Standing {
            status: S::Rejected,
            reapply_after: Some(reapply_after(now(), 30)),
        });
        let early = now() + Duration::days(29);
        assert_eq!(
            transition(rejected, A::Apply, early),
            Err(TransitionError::CoolingDown(now() + Duration::days(30)))
        );
        assert_eq!(
            transition(rejected, A::Apply, now() + Duration::days(30)),
            Ok(S::Applied)
        );
        assert_eq!(
            transition(rejected, A::Invite, early),
            Ok(S::Invited),
            "the program may invite it anyway"
        );
    }

    #[test]
    fn a_partner_earns_while_active_and_on_what_happened_before_it_ended() {
        let end = now();
        assert!(earns_at(S::Active, None, end + Duration::days(1)));
        assert!(earns_at(
            S::Deactivated,
            Some(end),
            end - Duration::seconds(1)
        ));
        assert!(!earns_at(S::Deactivated, Some(end), end));
        assert!(!earns_at(S::Banned, Some(end), end + Duration::days(1)));
        assert!(!earns_at(S::Invited, None, end));
        assert!(!earns_at(S::Applied, None, end));
    }
}
