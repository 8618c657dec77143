//! Daily conversion roll-ups, written in the transaction that changes the
//! money, so a report can never disagree with the commissions behind it.

use crate::domain::{LinkId, PartnerId, ProgramId};
use chrono::NaiveDate;
use sqlx::PgConnection;
use std::collections::BTreeMap;

/// A change to one day's figures: of the program (`partner` None) or of
/// one partner; `link` None for a coupon attribution (stored as link 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    pub program: ProgramId,
    pub partner: Option<PartnerId>,
    pub link: Option<LinkId>,
    pub day: NaiveDate,
    pub conversions: i64,
    pub revenue_minor: i64,
    pub commission_minor: i64,
}

#[derive(Default, Clone, Copy)]
struct Sums {
    conversions: i64,
    revenue: i64,
    commission: i64,
}

/// Adds the deltas, summed per row and written in key order (so concurrent
/// writers lock rows in the same order and never deadlock).
pub async fn add(tx: &mut PgConnection, deltas: &[Delta]) -> Result<(), sqlx::Error> {
    let mut programs: BTreeMap<(i64, i64, NaiveDate), Sums> = BTreeMap::new();
    let mut partners: BTreeMap<(i64, i64, NaiveDate, i64), Sums> = BTreeMap::new();
    for d in deltas {
        let (program, link) = (d.program.get(), d.link.map_or(0, LinkId::get));
        let s = match d.partner {
            None => programs.entry((program, link, d.day)).or_default(),
            Some(p) => partners.entry((p.get(), link, d.day, program)).or_default(),
        };
        s.conversions += d.conversions;
        s.revenue += d.revenue_minor;
        s.commission += d.commission_minor;
    }
    if !programs.is_empty() {
        let rows: Vec<_> = programs.into_iter().collect();
        sqlx::query!(
            r#"
            insert into conversion_days (program_id, link_id, day, conversions, revenue_minor, commission_minor)
            select * from unnest($1::bigint[], $2::bigint[], $3::date[], $4::bigint[], $5::bigint[], $6::bigint[])
            on conflict (program_id, link_id, day) do update set
                conversions = conversion_days.conversions + excluded.conversions,
                revenue_minor = conversion_days.revenue_minor + excluded.revenue_minor,
                commission_minor = conversion_days.commission_minor + excluded.commission_minor
            "#,
            &rows.iter().map(|r| r.0.0).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.0.1).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.0.2).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.1.conversions).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.1.revenue).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.1.commission).collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    if !partners.is_empty() {
        let rows: Vec<_> = partners.into_iter().collect();
        sqlx::query!(
            r#"
            insert into partner_conversion_days
                (partner_id, link_id, day, program_id, conversions, revenue_minor, commission_minor)
            select * from unnest($1::bigint[], $2::bigint[], $3::date[], $4::bigint[], $5::bigint[],
                                 $6::bigint[], $7::bigint[])
            on conflict (partner_id, link_id, day, program_id) do update set
                conversions = partner_conversion_days.conversions + excluded.conversions,
                revenue_minor = partner_conversion_days.revenue_minor + excluded.revenue_minor,
                commission_minor = partner_conversion_days.commission_minor + excluded.commission_minor
            "#,
            &rows.iter().map(|r| r.0.0).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.0.1).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.0.2).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.0.3).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.1.conversions).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.1.revenue).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.1.commission).collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
