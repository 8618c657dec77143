//! Reports: daily clicks, conversions, revenue and commission, read from the
//! roll-ups (never from raw clicks or conversions).

use crate::domain::{LinkId, PartnerId, ProgramId, mul_div_round};
use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgPool;

/// The longest period one report covers.
pub const MAX_DAYS: i64 = 1100;

#[derive(Debug, Clone)]
pub struct ReportQuery {
    pub from: NaiveDate,
    /// Inclusive.
    pub to: NaiveDate,
    pub program: Option<ProgramId>,
    pub partner: Option<PartnerId>,
    pub link: Option<LinkId>,
}

/// One day's figures. `clicks` excludes bots; EPC is commission per
/// (non-bot) click in minor units, rounded half away from zero; conversion
/// rate is conversions per click. Both are null on a day without clicks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ReportRow)]
pub struct Row {
    pub day: NaiveDate,
    pub clicks: i64,
    pub unique_clicks: i64,
    pub bot_clicks: i64,
    pub conversions: i64,
    pub revenue_minor: i64,
    pub commission_minor: i64,
    pub epc_minor: Option<i64>,
    pub conversion_rate: Option<f64>,
}

/// One day of the roll-ups, as both report queries select it.
struct Day {
    day: NaiveDate,
    clicks: i64,
    uniq: i64,
    bots: i64,
    conversions: i64,
    revenue: i64,
    commission: i64,
}

impl From<Day> for Row {
    fn from(d: Day) -> Self {
        Row {
            day: d.day,
            clicks: d.clicks,
            unique_clicks: d.uniq,
            bot_clicks: d.bots,
            conversions: d.conversions,
            revenue_minor: d.revenue,
            commission_minor: d.commission,
            ..Default::default()
        }
    }
}

impl Row {
    fn finish(mut self) -> Self {
        if self.clicks > 0 {
            self.epc_minor = mul_div_round(self.commission_minor, 1, self.clicks).ok();
            // Rounded to 6 places: a ratio for people, not money.
            let rate = self.conversions as f64 / self.clicks as f64;
            self.conversion_rate = Some((rate * 1e6).round() / 1e6);
        }
        self
    }
}

/// Daily rows for every day of the period (days without activity are
/// zeros), and their totals.
pub async fn daily(db: &PgPool, q: &ReportQuery) -> Result<(Vec<Row>, Row), sqlx::Error> {
    let rows: Vec<Row> = match q.partner {
        None => sqlx::query_as!(
            Day,
            r#"
            with days as (select d::date as day from generate_series($1::date, $2::date, interval '1 day') d),
            c as (
                select day, sum(clicks)::bigint as clicks, sum(unique_clicks)::bigint as uniq,
                       sum(bot_clicks)::bigint as bots
                from link_click_days
                where day between $1 and $2 and ($3::bigint is null or program_id = $3)
                  and ($4::bigint is null or link_id = $4)
                group by day),
            v as (
                select day, sum(conversions)::bigint as conversions, sum(revenue_minor)::bigint as revenue,
                       sum(commission_minor)::bigint as commission
                from conversion_days
                where day between $1 and $2 and ($3::bigint is null or program_id = $3)
                  and ($4::bigint is null or link_id = $4)
                group by day)
            select days.day as "day!", coalesce(c.clicks, 0) as "clicks!", coalesce(c.uniq, 0) as "uniq!",
                   coalesce(c.bots, 0) as "bots!", coalesce(v.conversions, 0) as "conversions!",
                   coalesce(v.revenue, 0) as "revenue!", coalesce(v.commission, 0) as "commission!"
            from days left join c using (day) left join v using (day)
            order by days.day
            "#,
            q.from,
            q.to,
            q.program.map(ProgramId::get),
            q.link.map(LinkId::get),
        )
        .fetch_all(db)
        .await?
        .into_iter()
        .map(Row::from)
        .collect(),
        Some(partner) => sqlx::query_as!(
            Day,
            r#"
            with days as (select d::date as day from generate_series($1::date, $2::date, interval '1 day') d),
            c as (
                select day, sum(clicks)::bigint as clicks, sum(unique_clicks)::bigint as uniq,
                       sum(bot_clicks)::bigint as bots
                from partner_click_days
                where partner_id = $5 and day between $1 and $2
                  and ($3::bigint is null or program_id = $3) and ($4::bigint is null or link_id = $4)
                group by day),
            v as (
                select day, sum(conversions)::bigint as conversions, sum(revenue_minor)::bigint as revenue,
                       sum(commission_minor)::bigint as commission
                from partner_conversion_days
                where partner_id = $5 and day between $1 and $2
                  and ($3::bigint is null or program_id = $3) and ($4::bigint is null or link_id = $4)
                group by day)
            select days.day as "day!", coalesce(c.clicks, 0) as "clicks!", coalesce(c.uniq, 0) as "uniq!",
                   coalesce(c.bots, 0) as "bots!", coalesce(v.conversions, 0) as "conversions!",
                   coalesce(v.revenue, 0) as "revenue!", coalesce(v.commission, 0) as "commission!"
            from days left join c using (day) left join v using (day)
            order by days.day
            "#,
            q.from,
            q.to,
            q.program.map(ProgramId::get),
            q.link.map(LinkId::get),
            partner.get(),
        )
        .fetch_all(db)
        .await?
        .into_iter()
        .map(Row::from)
        .collect(),
    };
    let mut totals = Row {
        day: q.from,
        ..Default::default()
    };
    for r in &rows {
        totals.clicks += r.clicks;
        totals.unique_clicks += r.unique_clicks;
        totals.bot_clicks += r.bot_clicks;
        totals.conversions += r.conversions;
        totals.revenue_minor += r.revenue_minor;
        totals.commission_minor += r.commission_minor;
    }
    Ok((rows.into_iter().map(Row::finish).collect(), totals.finish()))
}

/// The rows as CSV, one line per day.
pub fn to_csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "day,clicks,unique_clicks,bot_clicks,conversions,revenue_minor,commission_minor,epc_minor,conversion_rate\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            r.day,
            r.clicks,
            r.unique_clicks,
            r.bot_clicks,
            r.conversions,
            r.revenue_minor,
            r.commission_minor,
            r.epc_minor.map(|e| e.to_string()).unwrap_or_default(),
            r.conversion_rate.map(|c| c.to_string()).unwrap_or_default(),
        ));
    }
    out
}

/// One day's commission of a partner in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earned {
    pub day: NaiveDate,
    pub currency: crate::domain::Currency,
    pub commission_minor: i64,
}

/// A partner's commission per day and currency over a period (its
/// programs may pay in different currencies, which never add up).
pub async fn partner_earnings(
    db: &PgPool,
    partner: PartnerId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Earned>, sqlx::Error> {
    sqlx::query_as!(
        Earned,
        r#"select d.day, g.currency as "currency: crate::domain::Currency",
                  sum(d.commission_minor)::bigint as "commission_minor!"
           from partner_conversion_days d join programs g on g.id = d.program_id
           where d.partner_id = $1 and d.day between $2 and $3
           group by d.day, g.currency
           order by d.day, g.currency"#,
        partner.get(),
        from,
        to
    )
    .fetch_all(db)
    .await
}
