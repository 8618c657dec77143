//! Enrollments: partners' memberships of programs, stored with every move
//! they went through. The moves themselves are decided in
//! `domain::transition`; this module loads a membership, asks that
//! function, and writes the new state with its event in one transaction.

use crate::domain::{
    EnrollmentAction, EnrollmentId, EnrollmentReason, EnrollmentStatus, PartnerId, ProgramId,
    Standing, TransitionError, random_token, transition,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use std::collections::HashSet;

/// A membership as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub id: EnrollmentId,
    pub program_id: ProgramId,
    pub program_name: String,
    pub partner_id: Option<PartnerId>,
    pub partner_name: Option<String>,
    /// The address an e-mail invitation went to.
    pub email: Option<String>,
    pub status: EnrollmentStatus,
    pub application_note: Option<String>,
    pub reason_code: Option<EnrollmentReason>,
    pub note: Option<String>,
    pub reapply_after: Option<DateTime<Utc>>,
    pub active_since: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One move of a membership, as kept.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
// Named apart from the conversion `Event`: components share one namespace.
#[schema(as = EnrollmentEvent)]
pub struct Event {
    pub action: EnrollmentAction,
    pub from_status: Option<EnrollmentStatus>,
    pub to_status: EnrollmentStatus,
    /// Who: `admin`, the program's id, the partner's id, or `migration`.
    pub actor: String,
    pub reason_code: Option<EnrollmentReason>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Whom an invitation is for.
#[derive(Debug, Clone)]
pub enum Invitee {
    Partner(PartnerId),
    Email(crate::domain::Email),
}

/// Why a move was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The partner an invitation names does not exist.
    #[error("no such partner")]
    UnknownPartner,
    #[error(transparent)]
    Move(#[from] TransitionError),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A decision's reason and note, and who took it.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub actor: String,
    pub reason_code: Option<EnrollmentReason>,
    pub note: Option<String>,
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Invites a partner (by id, or anyone by e-mail). Answers the membership
/// and the token of its accept link, shown once.
pub async fn invite(
    db: &PgPool,
    program: ProgramId,
    invitee: &Invitee,
    decision: &Decision,
) -> Result<(EnrollmentId, String), EnrollError> {
    let token = random_token();
    let mut tx = db.begin().await?;
    let id = match invitee {
        Invitee::Partner(partner) => {
            let exists = sqlx::query_scalar!(
                r#"select exists(select 1 from partners where id = $1) as "found!""#,
                partner.get()
            )
            .fetch_one(&mut *tx)
            .await?;
            if !exists {
                return Err(EnrollError::UnknownPartner);
            }
            let current = lock_by_partner(&mut tx, program, *partner).await?;
            match current {
                Some((id, standing)) => {
                    move_to(
                        &mut tx,
                        id,
                        Some(standing),
                        EnrollmentAction::Invite,
                        decision,
                    )
                    .await?;
                    id
                }
                None => {
                    let status = transition(None, EnrollmentAction::Invite, chrono::Utc::now())?;
                    let id = sqlx::query_scalar!(
                        r#"insert into enrollments (program_id, partner_id, status, note)
                           values ($1, $2, $3, $4) returning id as "id: EnrollmentId""#,
                        program.get(),
                        partner.get(),
                        status.as_str(),
                        decision.note
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    record(
                        &mut tx,
                        id,
                        EnrollmentAction::Invite,
                        None,
                        status,
                        decision,
                    )
                    .await?;
                    id
                }
            }
        }
        Invitee::Email(email) => {
            let existing = sqlx::query!(
                r#"select id as "id: EnrollmentId", status as "status: EnrollmentStatus"
                   from enrollments
                   where program_id = $1 and partner_id is null and lower(email) = lower($2)
                   for update"#,
                program.get(),
                email.as_str()
            )
            .fetch_optional(&mut *tx)
            .await?;
            match existing {
                Some(row) => {
                    let standing = Standing {
                        status: row.status,
                        reapply_after: None,
                    };
                    // Inviting the same address again renews the link.
                    if row.status != EnrollmentStatus::Invited {
                        move_to(
                            &mut tx,
                            row.id,
                            Some(standing),
                            EnrollmentAction::Invite,
                            decision,
                        )
                        .await?;
                    }
                    row.id
                }
                None => {
                    let id = sqlx::query_scalar!(
                        r#"insert into enrollments (program_id, email, status, note)
                           values ($1, $2, 'invited', $3) returning id as "id: EnrollmentId""#,
                        program.get(),
                        email.as_str(),
                        decision.note
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    record(
                        &mut tx,
                        id,
                        EnrollmentAction::Invite,
                        None,
                        EnrollmentStatus::Invited,
                        decision,
                    )
                    .await?;
                    id
                }
            }
        }
    };
    sqlx::query!(
        "update enrollments set invite_token_hash = $2, updated_at = now() where id = $1",
        id.get(),
        token_hash(&token)
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((id, token))
}

/// A partner applies to a public program. A program that is not public is
/// not there to apply to.
pub async fn apply(
    db: &PgPool,
    program: ProgramId,
    partner: PartnerId,
    note: Option<&str>,
) -> Result<EnrollmentId, EnrollError> {
    let mut tx = db.begin().await?;
    let public = sqlx::query_scalar!(
        "select public from programs where id = $1 for share",
        program.get()
    )
    .fetch_optional(&mut *tx)
    .await?;
    if public != Some(true) {
        return Err(EnrollError::NotFound("program"));
    }
    let decision = Decision {
        actor: partner.to_string(),
        reason_code: None,
        note: note.map(str::to_owned),
    };
    let id = match lock_by_partner(&mut tx, program, partner).await? {
        Some((id, standing)) => {
            move_to(
                &mut tx,
                id,
                Some(standing),
                EnrollmentAction::Apply,
                &decision,
            )
            .await?;
            id
        }
        None => {
            let status = transition(None, EnrollmentAction::Apply, chrono::Utc::now())?;
            let id = sqlx::query_scalar!(
                r#"insert into enrollments (program_id, partner_id, status, application_note)
                   values ($1, $2, $3, $4) returning id as "id: EnrollmentId""#,
                program.get(),
                partner.get(),
                status.as_str(),
                note
            )
            .fetch_one(&mut *tx)
            .await?;
            record(
                &mut tx,
                id,
                EnrollmentAction::Apply,
                None,
                status,
                &decision,
            )
            .await?;
            id
        }
    };
    sqlx::query!(
        "update enrollments set application_note = $2 where id = $1",
        id.get(),
        note
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Takes `action` on a membership. The caller has checked that the actor
/// may (the partner for accept and decline, the program otherwise).
pub async fn act(
    db: &PgPool,
    id: EnrollmentId,
    action: EnrollmentAction,
    decision: &Decision,
) -> Result<EnrollmentStatus, EnrollError> {
    let mut tx = db.begin().await?;
    let standing = lock(&mut tx, id)
        .await?
        .ok_or(EnrollError::NotFound("enrollment"))?;
    let status = move_to(&mut tx, id, Some(standing), action, decision).await?;
    tx.commit().await?;
    Ok(status)
}

/// Accepts the invitation behind an accept link, as `partner`. An e-mail
/// invitation becomes the partner's membership.
pub async fn accept_token(
    db: &PgPool,
    token: &str,
    partner: PartnerId,
    accept: bool,
) -> Result<EnrollmentId, EnrollError> {
    let mut tx = db.begin().await?;
    let row = sqlx::query!(
        r#"select id as "id: EnrollmentId", program_id as "program_id: ProgramId",
                  partner_id as "partner_id: PartnerId", status as "status: EnrollmentStatus"
           from enrollments where invite_token_hash = $1 for update"#,
        token_hash(token)
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(EnrollError::NotFound("invitation"))?;
    match row.partner_id {
        Some(p) if p != partner => return Err(EnrollError::NotFound("invitation")),
        Some(_) => {}
        None => {
            if lock_by_partner(&mut tx, row.program_id, partner)
                .await?
                .is_some()
            {
                return Err(EnrollError::Conflict(
                    "this partner already has a membership of the program".into(),
                ));
            }
            sqlx::query!(
                "update enrollments set partner_id = $2 where id = $1",
                row.id.get(),
                partner.get()
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    let decision = Decision {
        actor: partner.to_string(),
        ..Decision::default()
    };
    let action = if accept {
        EnrollmentAction::Accept
    } else {
        EnrollmentAction::Decline
    };
    let standing = Standing {
        status: row.status,
        reapply_after: None,
    };
    move_to(&mut tx, row.id, Some(standing), action, &decision).await?;
    tx.commit().await?;
    Ok(row.id)
}

async fn lock(tx: &mut PgConnection, id: EnrollmentId) -> Result<Option<Standing>, sqlx::Error> {
    Ok(sqlx::query!(
        r#"select status as "status: EnrollmentStatus", reapply_after
           from enrollments where id = $1 for update"#,
        id.get()
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| Standing {
        status: r.status,
        reapply_after: r.reapply_after,
    }))
}

async fn lock_by_partner(
    tx: &mut PgConnection,
    program: ProgramId,
    partner: PartnerId,
) -> Result<Option<(EnrollmentId, Standing)>, sqlx::Error> {
    Ok(sqlx::query!(
        r#"select id as "id: EnrollmentId", status as "status: EnrollmentStatus", reapply_after
           from enrollments where program_id = $1 and partner_id = $2 for update"#,
        program.get(),
        partner.get()
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| {
        (
            r.id,
            Standing {
                status: r.status,
                reapply_after: r.reapply_after,
            },
        )
    }))
}

/// Moves a locked membership and records the event. Activation, ending and
/// rejection set their timestamps; a ban holds the partner's pending
/// commissions in the program for review.
async fn move_to(
    tx: &mut PgConnection,
    id: EnrollmentId,
    current: Option<Standing>,
    action: EnrollmentAction,
    decision: &Decision,
) -> Result<EnrollmentStatus, EnrollError> {
    let now = Utc::now();
    let to = transition(current, action, now)?;
    let row = sqlx::query!(
        r#"
        update enrollments e set
            status = $2,
            reason_code = $3,
            note = $4,
            active_since = case when $2 = 'active' then now() else e.active_since end,
            ended_at = case when $2 in ('deactivated', 'banned') then now()
                            when $2 = 'active' then null else e.ended_at end,
            reapply_after = case when $2 = 'rejected'
                                 then now() + make_interval(days => p.reapply_cooldown_days)
                                 else null end,
            invite_token_hash = case when $2 = 'invited' then e.invite_token_hash else null end,
            updated_at = now()
        from programs p
        where e.id = $1 and p.id = e.program_id
        returning e.program_id as "program_id: ProgramId", e.partner_id as "partner_id: PartnerId"
        "#,
        id.get(),
        to.as_str(),
        decision.reason_code.map(|r| r.as_str()),
        decision.note
    )
    .fetch_one(&mut *tx)
    .await?;
    record(tx, id, action, current.map(|c| c.status), to, decision).await?;
    if to == EnrollmentStatus::Banned
        && let Some(partner) = row.partner_id
    {
        sqlx::query!(
            r#"update commissions set review = true, updated_at = now()
               where program_id = $1 and partner_id = $2 and status = 'pending'"#,
            row.program_id.get(),
            partner.get()
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(to)
}

async fn record(
    tx: &mut PgConnection,
    id: EnrollmentId,
    action: EnrollmentAction,
    from: Option<EnrollmentStatus>,
    to: EnrollmentStatus,
    decision: &Decision,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"insert into enrollment_events
               (enrollment_id, action, from_status, to_status, actor, reason_code, note)
           values ($1, $2, $3, $4, $5, $6, $7)"#,
        id.get(),
        action.as_str(),
        from.map(|f| f.as_str()),
        to.as_str(),
        decision.actor,
        decision.reason_code.map(|r| r.as_str()),
        decision.note
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One membership with its program's and partner's names.
pub async fn get(db: &PgPool, id: EnrollmentId) -> Result<Option<Enrollment>, sqlx::Error> {
    sqlx::query_as!(
        Enrollment,
        r#"
        select e.id as "id: EnrollmentId", e.program_id as "program_id: ProgramId",
               g.name as program_name, e.partner_id as "partner_id: PartnerId",
               p.name as "partner_name?", e.email, e.status as "status: EnrollmentStatus",
               e.application_note, e.reason_code as "reason_code: EnrollmentReason", e.note,
               e.reapply_after, e.active_since, e.ended_at, e.created_at, e.updated_at
        from enrollments e
        join programs g on g.id = e.program_id
        left join partners p on p.id = e.partner_id
        where e.id = $1
        "#,
        id.get()
    )
    .fetch_optional(db)
    .await
}

/// The membership an invitation's accept link names, while it can still
/// be answered.
pub async fn by_token(db: &PgPool, token: &str) -> Result<Option<Enrollment>, sqlx::Error> {
    let id = sqlx::query_scalar!(
        r#"select id as "id: EnrollmentId" from enrollments
           where invite_token_hash = $1 and status = 'invited'"#,
        token_hash(token)
    )
    .fetch_optional(db)
    .await?;
    match id {
        Some(id) => get(db, id).await,
        None => Ok(None),
    }
}

/// Which side a list is for.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    Program(ProgramId),
    /// A partner's memberships, and e-mail invitations to its address.
    Partner(PartnerId),
}

/// Memberships in id order, optionally in one status.
pub async fn list(
    db: &PgPool,
    side: Side,
    status: Option<EnrollmentStatus>,
    after: i64,
    limit: i64,
) -> Result<Vec<Enrollment>, sqlx::Error> {
    let (program, partner) = match side {
        Side::Program(p) => (Some(p.get()), None),
        Side::Partner(p) => (None, Some(p.get())),
    };
    sqlx::query_as!(
        Enrollment,
        r#"
        select e.id as "id: EnrollmentId", e.program_id as "program_id: ProgramId",
               g.name as program_name, e.partner_id as "partner_id: PartnerId",
               p.name as "partner_name?", e.email, e.status as "status: EnrollmentStatus",
               e.application_note, e.reason_code as "reason_code: EnrollmentReason", e.note,
               e.reapply_after, e.active_since, e.ended_at, e.created_at, e.updated_at
        from enrollments e
        join programs g on g.id = e.program_id
        left join partners p on p.id = e.partner_id
        where e.id > $1
          and ($2::bigint is null or e.program_id = $2)
          and ($3::bigint is null or e.partner_id = $3
               or (e.partner_id is null
                   and lower(e.email) = (select lower(email) from partners where id = $3)))
          and ($4::text is null or e.status = $4)
        order by e.id
        limit $5
        "#,
        after,
        program,
        partner,
        status.map(|s| s.as_str()),
        limit
    )
    .fetch_all(db)
    .await
}

/// A membership's moves, oldest first.
pub async fn events(db: &PgPool, id: EnrollmentId) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as!(
        Event,
        r#"select action as "action: EnrollmentAction",
                  from_status as "from_status: EnrollmentStatus",
                  to_status as "to_status: EnrollmentStatus", actor,
                  reason_code as "reason_code: EnrollmentReason", note, created_at
           from enrollment_events where enrollment_id = $1 order by id"#,
        id.get()
    )
    .fetch_all(db)
    .await
}

/// Which of `partners` are active in `program`.
pub async fn active_among(
    db: &PgPool,
    program: ProgramId,
    partners: &[PartnerId],
) -> Result<HashSet<PartnerId>, sqlx::Error> {
    let ids: Vec<i64> = partners.iter().map(|p| p.get()).collect();
    Ok(sqlx::query_scalar!(
        r#"select partner_id as "partner_id!: PartnerId" from enrollments
           where program_id = $1 and partner_id = any($2) and status = 'active'"#,
        program.get(),
        &ids
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .collect())
}

/// Whether the partner is active in the program.
pub async fn is_active(
    db: &PgPool,
    program: ProgramId,
    partner: PartnerId,
) -> Result<bool, sqlx::Error> {
    Ok(active_among(db, program, &[partner])
        .await?
        .contains(&partner))
}

/// Whether the partner is, or ever was, in the program: any enrollment,
/// whatever its status. A statement of the program is the partner's to read.
pub async fn ever_enrolled(
    db: &PgPool,
    program: ProgramId,
    partner: PartnerId,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from enrollments where program_id = $1 and partner_id = $2) as "found!""#,
        program.get(),
        partner.get()
    )
    .fetch_one(db)
    .await
}
