//! Claims, as Impact's action inquiries and Awin's transaction queries
//! work: a partner asks about a sale that was never booked (`untracked`), a
//! commission booked with the wrong amount (`incorrect`) or one rejected or
//! reversed (`declined`); the program answers in a comment thread, and
//! accepts (`accept`: booked, adjusted or reinstated through the ledger) or
//! declines with a reason code. A program sets how many days it has to
//! answer and what happens past them (`overdue`, the worker that applies
//! it and counts what is overdue). Every step is kept with who and when
//! (`claim_events`), and both sides are told by outgoing webhooks (a
//! trigger writes `claim.*` events with each step).

pub mod accept;
pub mod csv;
pub mod overdue;

use crate::conversions::{check_amount, check_occurred_at, check_reference};
use crate::domain::Event;
use crate::domain::{
    AgreementId, ClaimAction, ClaimId, ClaimKind, ClaimReason, ClaimStatus, CommissionId,
    CommissionStatus, ConversionId, Currency, OverdueAction, PartnerId, ProgramId,
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;

/// A claim as the partner opens it, checked field by field at the edge.
#[derive(Debug, Clone)]
pub struct NewClaim {
    pub program: ProgramId,
    pub partner: PartnerId,
    pub kind: ClaimKind,
    pub order_id: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub amount_minor: Option<i64>,
    pub agreement_id: Option<AgreementId>,
    pub commission_id: Option<CommissionId>,
    pub expected_commission_minor: Option<i64>,
    pub note: Option<String>,
}

/// One step of a claim's thread.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClaimEvent {
    pub action: ClaimAction,
    /// Who: `admin`, the program's id, the partner's id, or `deadline`.
    pub actor: String,
    pub reason_code: Option<ClaimReason>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A claim, with its thread.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Claim {
    pub id: ClaimId,
    pub program_id: ProgramId,
    pub partner_id: PartnerId,
    pub kind: ClaimKind,
    pub status: ClaimStatus,
    pub order_id: Option<String>,
    /// When the claimed sale happened.
    pub occurred_at: Option<DateTime<Utc>>,
    pub amount_minor: Option<i64>,
    pub currency: Currency,
    pub agreement_id: Option<AgreementId>,
    pub commission_id: Option<CommissionId>,
    pub expected_commission_minor: Option<i64>,
    pub note: Option<String>,
    /// When the program must have answered.
    pub deadline_at: DateTime<Utc>,
    /// What happens if it has not: accept, decline, or none (left open).
    pub overdue_action: OverdueAction,
    pub reason_code: Option<ClaimReason>,
    pub decision_note: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The sale booked (untracked) or the conversion of the commission changed.
    pub conversion_id: Option<ConversionId>,
    pub created_at: DateTime<Utc>,
    /// Every step, oldest first (in lists: left out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ClaimEvent>,
}

/// What is missing or wrong in the sale an untracked claim names. Each
/// edge says it in its own words: the API as a field error in English
/// (`field`, `message`), the portal in its reader's language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UntrackedProblem {
    NoOrder,
    BadOrder(String),
    NoDate,
    BadDate(String),
    NoAmount,
    BadAmount(String),
}

impl UntrackedProblem {
    /// The API's name of the field.
    pub fn field(&self) -> &'static str {
        match self {
            Self::NoOrder | Self::BadOrder(_) => "order_id",
            Self::NoDate | Self::BadDate(_) => "occurred_at",
            Self::NoAmount | Self::BadAmount(_) => "amount_minor",
        }
    }

    /// What is wrong, as the API says it.
    pub fn message(&self) -> String {
        match self {
            Self::NoOrder => "an untracked claim names the order".into(),
            Self::NoDate => "an untracked claim says when the sale was".into(),
            Self::NoAmount => "an untracked claim gives the sale's amount".into(),
            Self::BadOrder(m) | Self::BadDate(m) | Self::BadAmount(m) => m.clone(),
        }
    }
}

/// Checks the sale an untracked claim names as a webhook's sale is checked:
/// the shop's order id, a date from 400 days ago to now, and an amount.
pub fn check_untracked(
    order_id: Option<&str>,
    occurred_at: Option<DateTime<Utc>>,
    amount_minor: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<UntrackedProblem> {
    use UntrackedProblem as P;
    let mut problems = Vec::new();
    match order_id.map(check_reference) {
        None => problems.push(P::NoOrder),
        Some(Err(m)) => problems.push(P::BadOrder(m)),
        Some(Ok(_)) => {}
    }
    match occurred_at.map(|t| check_occurred_at(t, now)) {
        None => problems.push(P::NoDate),
        Some(Err(m)) => problems.push(P::BadDate(m)),
        Some(Ok(_)) => {}
    }
    match amount_minor.map(|a| check_amount(Some(Event::Sale), a)) {
        None => problems.push(P::NoAmount),
        Some(Err(m)) => problems.push(P::BadAmount(m)),
        Some(Ok(_)) => {}
    }
    problems
}

/// The commission a partner says it expects: an amount within the bounds
/// of any amount.
pub fn check_expected(minor: i64) -> Result<i64, String> {
    check_amount(None, minor)
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("{0}")]
    Conflict(String),
    /// The sale is older than the program's claim window (`window_days`);
    /// `field` names what the claim gave: its date, or the commission.
    #[error("the program takes claims of sales up to {window_days} days old")]
    TooLate {
        field: &'static str,
        window_days: i32,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl ClaimError {
    /// A unique violation is a second open claim of the same thing.
    fn from_insert(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => {
                ClaimError::Conflict("an open claim of this order or commission exists".into())
            }
            _ => ClaimError::Db(e),
        }
    }
}

/// Opens claims, each with its `opened` step, in one transaction: all or
/// none. `actor` is who opened them (the partner, or the admin).
pub async fn open(
    db: &PgPool,
    claims: &[NewClaim],
    actor: &str,
) -> Result<Vec<ClaimId>, (usize, ClaimError)> {
    let mut tx = db.begin().await.map_err(|e| (0, e.into()))?;
    let mut ids = Vec::with_capacity(claims.len());
    for (i, new) in claims.iter().enumerate() {
        ids.push(open_in(&mut tx, new, actor).await.map_err(|e| (i, e))?);
    }
    tx.commit().await.map_err(|e| (0, e.into()))?;
    Ok(ids)
}

async fn open_in(
    tx: &mut PgConnection,
    new: &NewClaim,
    actor: &str,
) -> Result<ClaimId, ClaimError> {
    let program = sqlx::query!(
        r#"select currency as "currency: Currency", claim_deadline_days,
                  claim_overdue_action as "overdue: OverdueAction", claim_window_days
           from programs p
           where id = $1 and exists (select 1 from enrollments e
                                     where e.program_id = p.id and e.partner_id = $2)"#,
        new.program.get(),
        new.partner.get()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ClaimError::NotFound("program"))?;
    // The sale's date: as claimed, or the disputed commission's sale's.
    let now = Utc::now();
    let too_old = |at: Option<DateTime<Utc>>, field| match program.claim_window_days {
        Some(days) if at.is_some_and(|at| outside_window(at, days, now)) => {
            Err(ClaimError::TooLate {
                field,
                window_days: days,
            })
        }
        _ => Ok(()),
    };
    too_old(new.occurred_at, "occurred_at")?;
    if let Some(commission) = new.commission_id {
        let found = sqlx::query!(
            r#"select c.status as "status: CommissionStatus", v.occurred_at
               from commissions c join conversions v on v.id = c.conversion_id
               where c.id = $1 and c.program_id = $2 and c.partner_id = $3"#,
            commission.get(),
            new.program.get(),
            new.partner.get()
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(ClaimError::NotFound("commission"))?;
        too_old(Some(found.occurred_at), "commission_id")?;
        match (new.kind, found.status) {
            (ClaimKind::Declined, CommissionStatus::Reversed) => {}
            (ClaimKind::Declined, s) => {
                return Err(ClaimError::Conflict(format!(
                    "the commission is {s}, not rejected or reversed: open an incorrect claim"
                )));
            }
            (_, CommissionStatus::Reversed) => {
                return Err(ClaimError::Conflict(
                    "the commission is reversed: open a declined claim".into(),
                ));
            }
            _ => {}
        }
    }
    if let Some(agreement) = new.agreement_id {
        let ours = sqlx::query_scalar!(
            r#"select exists(select 1 from agreements a join agreement_partners ap
                                       on ap.agreement_id = a.id
                             where a.id = $1 and a.program_id = $2 and ap.partner_id = $3) as "ours!""#,
            agreement.get(),
            new.program.get(),
            new.partner.get()
        )
        .fetch_one(&mut *tx)
        .await?;
        if !ours {
            return Err(ClaimError::NotFound("agreement"));
        }
    }
    let id = sqlx::query_scalar!(
        r#"insert into claims (program_id, partner_id, kind, order_id, occurred_at, amount_minor,
                               currency, agreement_id, commission_id, expected_commission_minor,
                               note, deadline_at, overdue_action)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                   now() + make_interval(days => $12), $13)
           returning id as "id: ClaimId""#,
        new.program.get(),
        new.partner.get(),
        new.kind.as_str(),
        new.order_id,
        new.occurred_at,
        new.amount_minor,
        program.currency.code(),
        new.agreement_id.map(AgreementId::get),
        new.commission_id.map(CommissionId::get),
        new.expected_commission_minor,
        new.note,
        program.claim_deadline_days,
        program.overdue.as_str()
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(ClaimError::from_insert)?;
    record(
        tx,
        id,
        ClaimAction::Opened,
        actor,
        None,
        new.note.as_deref(),
    )
    .await?;
    Ok(id)
}

/// Appends a step to the claim's thread (its trigger tells both sides).
pub(crate) async fn record(
    tx: &mut PgConnection,
    id: ClaimId,
    action: ClaimAction,
    actor: &str,
    reason: Option<ClaimReason>,
    note: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into claim_events (claim_id, action, actor, reason_code, note) values ($1, $2, $3, $4, $5)",
        id.get(),
        action.as_str(),
        actor,
        reason.map(ClaimReason::as_str),
        note
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Claims by program and/or partner and status, oldest first, without threads.
pub async fn list(
    db: &PgPool,
    program: Option<ProgramId>,
    partner: Option<PartnerId>,
    status: Option<ClaimStatus>,
    after: i64,
    limit: i64,
) -> Result<Vec<Claim>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select id from claims
           where id > $1 and ($2::bigint is null or program_id = $2)
             and ($3::bigint is null or partner_id = $3) and ($4::text is null or status = $4)
           order by id limit $5"#,
        after,
        program.map(ProgramId::get),
        partner.map(PartnerId::get),
        status.map(ClaimStatus::as_str),
        limit
    )
    .fetch_all(db)
    .await?;
    without_threads(db, rows.into_iter().map(|r| r.id)).await
}

/// The newest `limit` claims by program and/or partner and status, newest
/// first, without threads (for pages that show the latest).
pub async fn newest(
    db: &PgPool,
    program: Option<ProgramId>,
    partner: Option<PartnerId>,
    status: Option<ClaimStatus>,
    limit: i64,
) -> Result<Vec<Claim>, sqlx::Error> {
    let ids = sqlx::query_scalar!(
        r#"select id from claims
           where ($1::bigint is null or program_id = $1)
             and ($2::bigint is null or partner_id = $2) and ($3::text is null or status = $3)
           order by id desc limit $4"#,
        program.map(ProgramId::get),
        partner.map(PartnerId::get),
        status.map(ClaimStatus::as_str),
        limit
    )
    .fetch_all(db)
    .await?;
    without_threads(db, ids).await
}

/// These claims, in this order, each without its thread: one query.
async fn without_threads(
    db: &PgPool,
    ids: impl IntoIterator<Item = i64>,
) -> Result<Vec<Claim>, sqlx::Error> {
    let ids: Vec<i64> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as!(
        Row,
        r#"select c.id as "id: ClaimId", c.program_id as "program_id: ProgramId",
                  c.partner_id as "partner_id: PartnerId", c.kind as "kind: ClaimKind",
                  c.status as "status: ClaimStatus", c.order_id, c.occurred_at, c.amount_minor,
                  c.currency as "currency: Currency", c.agreement_id as "agreement_id: AgreementId",
                  c.commission_id as "commission_id: CommissionId", c.expected_commission_minor,
                  c.note, c.deadline_at, c.overdue_action as "overdue_action: OverdueAction",
                  c.reason_code as "reason_code: ClaimReason", c.decision_note, c.decided_by,
                  c.decided_at, c.conversion_id as "conversion_id: ConversionId", c.created_at
           from unnest($1::bigint[]) with ordinality as q(id, n)
           join claims c on c.id = q.id
           order by q.n"#,
        &ids
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Row::claim).collect())
}

/// A claim with its thread.
pub async fn get(db: &PgPool, id: ClaimId) -> Result<Option<Claim>, sqlx::Error> {
    let Some(mut claim) = without_threads(db, [id.get()]).await?.pop() else {
        return Ok(None);
    };
    claim.events = sqlx::query_as!(
        ClaimEvent,
        r#"select action as "action: ClaimAction", actor,
                  reason_code as "reason_code: ClaimReason", note, created_at
           from claim_events where claim_id = $1 order by id"#,
        id.get()
    )
    .fetch_all(db)
    .await?;
    Ok(Some(claim))
}

/// A claim's row, as `without_threads` reads it.
struct Row {
    id: ClaimId,
    program_id: ProgramId,
    partner_id: PartnerId,
    kind: ClaimKind,
    status: ClaimStatus,
    order_id: Option<String>,
    occurred_at: Option<DateTime<Utc>>,
    amount_minor: Option<i64>,
    currency: Currency,
    agreement_id: Option<AgreementId>,
    commission_id: Option<CommissionId>,
    expected_commission_minor: Option<i64>,
    note: Option<String>,
    deadline_at: DateTime<Utc>,
    overdue_action: OverdueAction,
    reason_code: Option<ClaimReason>,
    decision_note: Option<String>,
    decided_by: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    conversion_id: Option<ConversionId>,
    created_at: DateTime<Utc>,
}

impl Row {
    fn claim(self) -> Claim {
        Claim {
            id: self.id,
            program_id: self.program_id,
            partner_id: self.partner_id,
            kind: self.kind,
            status: self.status,
            order_id: self.order_id,
            occurred_at: self.occurred_at,
            amount_minor: self.amount_minor,
            currency: self.currency,
            agreement_id: self.agreement_id,
            commission_id: self.commission_id,
            expected_commission_minor: self.expected_commission_minor,
            note: self.note,
            deadline_at: self.deadline_at,
            overdue_action: self.overdue_action,
            reason_code: self.reason_code,
            decision_note: self.decision_note,
            decided_by: self.decided_by,
            decided_at: self.decided_at,
            conversion_id: self.conversion_id,
            created_at: self.created_at,
            events: Vec::new(),
        }
    }
}

/// A claim locked for a decision; refused unless open.
pub(crate) struct Locked {
    pub id: ClaimId,
    pub program_id: ProgramId,
    pub partner_id: PartnerId,
    pub kind: ClaimKind,
    pub order_id: Option<String>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub amount_minor: Option<i64>,
    pub currency: Currency,
    pub agreement_id: Option<AgreementId>,
    pub commission_id: Option<CommissionId>,
    pub expected_commission_minor: Option<i64>,
}

pub(crate) async fn lock_open(tx: &mut PgConnection, id: ClaimId) -> Result<Locked, ClaimError> {
    let c = sqlx::query!(
        r#"select id as "id: ClaimId", program_id as "program_id: ProgramId",
                  partner_id as "partner_id: PartnerId", kind as "kind: ClaimKind",
                  status as "status: ClaimStatus", order_id, occurred_at, amount_minor,
                  currency as "currency: Currency", agreement_id as "agreement_id: AgreementId",
                  commission_id as "commission_id: CommissionId", expected_commission_minor
           from claims where id = $1 for update"#,
        id.get()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ClaimError::NotFound("claim"))?;
    if c.status != ClaimStatus::Open {
        return Err(ClaimError::Conflict(format!("the claim is {}", c.status)));
    }
    Ok(Locked {
        id: c.id,
        program_id: c.program_id,
        partner_id: c.partner_id,
        kind: c.kind,
        order_id: c.order_id,
        occurred_at: c.occurred_at,
        amount_minor: c.amount_minor,
        currency: c.currency,
        agreement_id: c.agreement_id,
        commission_id: c.commission_id,
        expected_commission_minor: c.expected_commission_minor,
    })
}

/// Adds a comment to an open or closed claim's thread.
pub async fn comment(db: &PgPool, id: ClaimId, actor: &str, note: &str) -> Result<(), ClaimError> {
    let mut tx = db.begin().await?;
    record(&mut tx, id, ClaimAction::Commented, actor, None, Some(note)).await?;
    sqlx::query!(
        "update claims set updated_at = now() where id = $1",
        id.get()
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Declines an open claim with a reason code (and a note the partner reads).
pub async fn decline(
    db: &PgPool,
    id: ClaimId,
    actor: &str,
    reason: ClaimReason,
    note: Option<&str>,
) -> Result<(), ClaimError> {
    let mut tx = db.begin().await?;
    decline_in(&mut tx, id, actor, reason, note).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn decline_in(
    tx: &mut PgConnection,
    id: ClaimId,
    actor: &str,
    reason: ClaimReason,
    note: Option<&str>,
) -> Result<(), ClaimError> {
    lock_open(tx, id).await?;
    sqlx::query!(
        "update claims set status = 'declined', reason_code = $2, decision_note = $3,
                decided_by = $4, decided_at = now(), updated_at = now()
         where id = $1",
        id.get(),
        reason.as_str(),
        note,
        actor
    )
    .execute(&mut *tx)
    .await?;
    record(tx, id, ClaimAction::Declined, actor, Some(reason), note).await?;
    Ok(())
}

/// Which of these commissions of `partner` are past their program's claim
/// window (their sale is older than it), with the window in days: what
/// `open` would refuse as `TooLate`, for pages that offer a dispute.
pub async fn past_window(
    db: &PgPool,
    partner: PartnerId,
    commissions: &[CommissionId],
) -> Result<HashMap<CommissionId, i32>, sqlx::Error> {
    if commissions.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<i64> = commissions.iter().map(|c| c.get()).collect();
    let rows = sqlx::query!(
        r#"select c.id as "id: CommissionId", v.occurred_at, p.claim_window_days as "days!"
           from commissions c
           join conversions v on v.id = c.conversion_id
           join programs p on p.id = c.program_id
           where c.id = any($1) and c.partner_id = $2 and p.claim_window_days is not null"#,
        &ids,
        partner.get()
    )
    .fetch_all(db)
    .await?;
    let now = Utc::now();
    Ok(rows
        .into_iter()
        .filter(|r| outside_window(r.occurred_at, r.days, now))
        .map(|r| (r.id, r.days))
        .collect())
}

/// Whether a sale at `at` is older than a claim window of `days`.
fn outside_window(at: DateTime<Utc>, days: i32, now: DateTime<Utc>) -> bool {
    at < now - Duration::days(i64::from(days))
}

/// A program's claim policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Days the program has to answer a claim.
    pub deadline_days: i32,
    /// What happens to a claim still open then.
    pub overdue: OverdueAction,
    /// How old a sale may be to be claimed or disputed; `None`: any age.
    pub window_days: Option<i32>,
}

/// The most days a program may take to answer a claim.
pub const MAX_DEADLINE_DAYS: i32 = 365;
/// The widest claim window: as old as a sale mitra takes at all.
pub const MAX_WINDOW_DAYS: i32 = crate::conversions::MAX_AGE_DAYS as i32;

/// What is wrong with a claim policy: each edge says it in its own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyProblem {
    /// `deadline_days` is not from 1 to `MAX_DEADLINE_DAYS`.
    Deadline,
    /// `window_days` is not from 1 to `MAX_WINDOW_DAYS`.
    Window,
}

impl Policy {
    /// Its problems, in field order; none when it may be stored.
    pub fn problems(&self) -> Vec<PolicyProblem> {
        let mut problems = Vec::new();
        if !(1..=MAX_DEADLINE_DAYS).contains(&self.deadline_days) {
            problems.push(PolicyProblem::Deadline);
        }
        if self
            .window_days
            .is_some_and(|d| !(1..=MAX_WINDOW_DAYS).contains(&d))
        {
            problems.push(PolicyProblem::Window);
        }
        problems
    }
}

/// Sets a program's claim policy: claims opened from now on get its
/// deadline, and are held to its window.
pub async fn set_policy(
    db: &PgPool,
    program: ProgramId,
    policy: Policy,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update programs set claim_deadline_days = $2, claim_overdue_action = $3,
                claim_window_days = $4, updated_at = now()
         where id = $1",
        program.get(),
        policy.deadline_days,
        policy.overdue.as_str(),
        policy.window_days
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A program's claim policy.
pub async fn policy(db: &PgPool, program: ProgramId) -> Result<Option<Policy>, sqlx::Error> {
    Ok(sqlx::query!(
        r#"select claim_deadline_days, claim_overdue_action as "overdue: OverdueAction",
                  claim_window_days
           from programs where id = $1"#,
        program.get()
    )
    .fetch_optional(db)
    .await?
    .map(|r| Policy {
        deadline_days: r.claim_deadline_days,
        overdue: r.overdue,
        window_days: r.claim_window_days,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use UntrackedProblem as P;

    #[test]
    fn a_claim_policy_answers_within_a_year_and_its_window_reaches_back_at_most_400_days() {
        let policy = |deadline_days, window_days| Policy {
            deadline_days,
            overdue: OverdueAction::Accept,
            window_days,
        };
        assert_eq!(policy(1, None).problems(), []);
        assert_eq!(policy(365, Some(400)).problems(), []);
        assert_eq!(policy(1, Some(1)).problems(), []);
        assert_eq!(policy(0, None).problems(), [PolicyProblem::Deadline]);
        assert_eq!(policy(366, Some(30)).problems(), [PolicyProblem::Deadline]);
        assert_eq!(policy(30, Some(0)).problems(), [PolicyProblem::Window]);
        assert_eq!(
            policy(-1, Some(401)).problems(),
            [PolicyProblem::Deadline, PolicyProblem::Window]
        );
    }

    #[test]
    fn an_untracked_claim_names_an_order_a_date_in_range_and_an_amount() {
        let now = Utc::now();
        assert_eq!(
            check_untracked(Some("ORD-1"), Some(now), Some(12_550), now),
            []
        );
        assert_eq!(
            check_untracked(None, None, None, now),
            [P::NoOrder, P::NoDate, P::NoAmount]
        );
        let problems = check_untracked(
            Some("bad\norder"),
            Some(now - chrono::Duration::days(401)),
            Some(-1),
            now,
        );
        assert_eq!(
            problems.iter().map(P::field).collect::<Vec<_>>(),
            ["order_id", "occurred_at", "amount_minor"]
        );
        assert!(
            problems
                .iter()
                .all(|p| matches!(p, P::BadOrder(_) | P::BadDate(_) | P::BadAmount(_)))
        );
        assert_eq!(
            P::NoAmount.message(),
            "an untracked claim gives the sale's amount"
        );
    }
}
