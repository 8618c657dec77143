//! Partners: affiliates, influencers, resellers and other parties.

use crate::domain::{Email, Name, PartnerId, ProgramId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// An affiliate, influencer, reseller or other partner.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Partner {
    pub id: PartnerId,
    #[schema(examples("Ayu"))]
    pub name: String,
    #[schema(value_type = Email)]
    pub email: String,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(
    db: &PgPool,
    name: &Name,
    email: &Email,
    api_key_hash: &[u8],
) -> Result<Partner, sqlx::Error> {
    sqlx::query_as!(
        Partner,
        r#"
        insert into partners (name, email, api_key_hash) values ($1, $2, $3)
        returning id as "id: PartnerId", name, email, created_at
        "#,
        name.as_str(),
        email.as_str(),
        api_key_hash
    )
    .fetch_one(db)
    .await
}

pub async fn get(db: &PgPool, id: PartnerId) -> Result<Option<Partner>, sqlx::Error> {
    sqlx::query_as!(
        Partner,
        r#"select id as "id: PartnerId", name, email, created_at from partners where id = $1"#,
        id.get()
    )
    .fetch_optional(db)
    .await
}

/// Partners in id order; with `program`, only those active in it: a
/// program sees a partner's contact details only while it is a member.
pub async fn list(
    db: &PgPool,
    program: Option<ProgramId>,
    after: i64,
    limit: i64,
) -> Result<Vec<Partner>, sqlx::Error> {
    sqlx::query_as!(
        Partner,
        r#"
        select p.id as "id: PartnerId", p.name, p.email, p.created_at
        from partners p
        where p.id > $1
          and ($2::bigint is null or exists (
                select 1 from enrollments e
                where e.partner_id = p.id and e.program_id = $2 and e.status = 'active'))
        order by p.id
        limit $3
        "#,
        after,
        program.map(ProgramId::get),
        limit
    )
    .fetch_all(db)
    .await
}
