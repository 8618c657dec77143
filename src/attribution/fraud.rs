//! Fraud signals. A suspected conversion is still booked, as a pending
//! commission held for review (it is never approved by the clock alone), and
//! counted in `mitra_conversions_total{outcome="fraud_suspected"}`: a person
//! decides, nothing is silently dropped.

use super::Claimed;
use crate::config::FraudSettings;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Each program's average attributed sale over 30 days, read at most once a
/// minute: an aggregate over a month of sales is too dear for every batch,
/// and an outlier threshold does not need to move by the second.
#[derive(Default)]
pub struct SaleAverages {
    cache: Mutex<HashMap<i64, (Average, Instant)>>,
}

/// Average sale in minor units, and how many sales it averages.
type Average = (i64, i64);

const AVERAGE_TTL: Duration = Duration::from_secs(60);

impl SaleAverages {
    /// Program -> (average sale in minor units, number of sales).
    pub(crate) async fn get(
        &self,
        tx: &mut PgConnection,
        programs: &[i64],
    ) -> Result<HashMap<i64, (i64, i64)>, sqlx::Error> {
        let mut cache = self.cache.lock().await;
        let stale: Vec<i64> = programs
            .iter()
            .copied()
            .filter(|p| {
                cache
                    .get(p)
                    .is_none_or(|(_, at)| at.elapsed() > AVERAGE_TTL)
            })
            .collect();
        if !stale.is_empty() {
            let fresh = sqlx::query!(
                r#"select p as "program_id!", coalesce(avg(c.amount_minor), 0)::bigint as "average!",
                          count(c.id) as "sales!"
                   from unnest($1::bigint[]) as p
                   left join conversions c on c.program_id = p and c.event = 'sale'
                        and c.status = 'attributed' and c.occurred_at > now() - interval '30 days'
                   group by p"#,
                &stale
            )
            .fetch_all(&mut *tx)
            .await?;
            for r in fresh {
                cache.insert(r.program_id, ((r.average, r.sales), Instant::now()));
            }
        }
        Ok(programs
            .iter()
            .filter_map(|p| cache.get(p).map(|(v, _)| (*p, *v)))
            .collect())
    }
}

/// What the database knows that bears on a batch's conversions.
pub struct Signals {
    flagged: HashSet<String>,
    orders_per_click: HashMap<String, i64>,
    first_lead: HashMap<String, i64>,
    /// Program -> (average sale in minor units, number of sales).
    sale_average: HashMap<i64, (i64, i64)>,
}

impl Signals {
    pub(crate) async fn load(
        tx: &mut PgConnection,
        candidates: &[(&Claimed, Option<&str>)],
        averages: &SaleAverages,
    ) -> Result<Self, sqlx::Error> {
        let mut clicks: Vec<String> = candidates
            .iter()
            .filter_map(|(_, c)| c.map(str::to_owned))
            .collect();
        clicks.sort();
        clicks.dedup();
        let mut programs: Vec<i64> = candidates
            .iter()
            .filter(|(r, _)| r.event == "sale")
            .map(|(r, _)| r.program_id)
            .collect();
        programs.sort_unstable();
        programs.dedup();
        let mut signals = Signals {
            flagged: HashSet::new(),
            orders_per_click: HashMap::new(),
            first_lead: HashMap::new(),
            sale_average: HashMap::new(),
        };
        if !clicks.is_empty() {
            signals.flagged = sqlx::query_scalar!(
                "select click_id from flagged_clicks where click_id = any($1)",
                &clicks
            )
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            // The event is filtered in the aggregate, not the where clause:
            // given both, the planner (with a table's statistics behind its
            // growth) AND-ed in a scan of the whole order index, and this
            // query cost more than booking (benches/conversions_load.sh).
            for r in sqlx::query!(
                r#"select click_id as "click_id!",
                          count(*) filter (where event in ('sale', 'lead')) as "orders!",
                          min(id) filter (where event = 'lead') as first_lead
                   from conversions
                   where click_id = any($1)
                   group by click_id"#,
                &clicks
            )
            .fetch_all(&mut *tx)
            .await?
            {
                signals
                    .orders_per_click
                    .insert(r.click_id.clone(), r.orders);
                if let Some(first) = r.first_lead {
                    signals.first_lead.insert(r.click_id, first);
                }
            }
        }
        signals.sale_average = averages.get(tx, &programs).await?;
        Ok(signals)
    }

    /// A lead whose click already produced an earlier lead.
    pub(crate) fn is_repeat_lead(&self, id: i64, click: Option<&str>) -> bool {
        click
            .and_then(|c| self.first_lead.get(c))
            .is_some_and(|first| *first != id)
    }

    /// The reasons to hold this conversion for review, if any.
    pub(crate) fn check(
        &self,
        row: &Claimed,
        click: Option<&str>,
        clicked_at: Option<DateTime<Utc>>,
        settings: &FraudSettings,
    ) -> Vec<&'static str> {
        let mut reasons = Vec::new();
        if let Some(at) = clicked_at
            && (row.occurred_at - at).num_seconds() < settings.min_click_seconds
        {
            reasons.push("too_fast");
        }
        if let Some(click) = click {
            if self.flagged.contains(click) {
                reasons.push("bot_click");
            }
            if self
                .orders_per_click
                .get(click)
                .is_some_and(|n| *n > settings.max_orders_per_click)
            {
                reasons.push("click_reused");
            }
        }
        if row.event == "sale"
            && let Some((average, sales)) = self.sale_average.get(&row.program_id)
            && *sales >= settings.amount_min_samples
            && i128::from(row.amount_minor)
                > i128::from(*average) * i128::from(settings.amount_factor)
        {
            reasons.push("amount_outlier");
        }
        reasons
    }
}
