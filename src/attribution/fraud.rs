//! Fraud signals. A suspected conversion is still booked, as a pending
//! commission held for review (it is never approved by the clock alone), and
//! counted in `mitra_conversions_total{outcome="fraud_suspected"}`: a person
//! decides, nothing is silently dropped.

use super::decide::Claimed;
use crate::config::FraudSettings;
use crate::domain::{ConversionId, Event, FraudSignal, ProgramId};
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
    cache: Mutex<HashMap<ProgramId, (Average, Instant)>>,
}

/// Average sale in minor units, and how many sales it averages.
type Average = (i64, i64);

const AVERAGE_TTL: Duration = Duration::from_secs(60);

impl SaleAverages {
    /// Program -> (average sale in minor units, number of sales).
    pub(crate) async fn get(
        &self,
        tx: &mut PgConnection,
        programs: &[ProgramId],
    ) -> Result<HashMap<ProgramId, Average>, sqlx::Error> {
        let mut cache = self.cache.lock().await;
        let stale: Vec<i64> = programs
            .iter()
            .copied()
            .filter(|p| {
                cache
                    .get(p)
                    .is_none_or(|(_, at)| at.elapsed() > AVERAGE_TTL)
            })
            .map(ProgramId::get)
            .collect();
        if !stale.is_empty() {
            let fresh = sqlx::query!(
                r#"select p as "program_id!: ProgramId", coalesce(avg(c.amount_minor), 0)::bigint as "average!",
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

/// What the database knows that bears on a batch's conversions. Counts
/// are per program: another merchant posting our click id changes nothing
/// here (its conversion is refused as an invalid click anyway).
#[derive(Debug, Default)]
pub struct Signals {
    flagged: HashSet<String>,
    /// (program, click id) -> sales and leads with that click id.
    orders_per_click: HashMap<(ProgramId, String), i64>,
    /// (program, click id) -> the first lead with that click id.
    first_lead: HashMap<(ProgramId, String), ConversionId>,
    /// Program -> (average sale in minor units, number of sales).
    sale_average: HashMap<ProgramId, Average>,
}

impl Signals {
    pub(crate) async fn load(
        tx: &mut PgConnection,
        candidates: &[(&Claimed, Option<&str>)],
        averages: &SaleAverages,
    ) -> Result<Self, sqlx::Error> {
        let mut pairs: Vec<(i64, &str)> = candidates
            .iter()
            .filter_map(|(r, c)| Some((r.program_id.get(), (*c)?)))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut programs: Vec<ProgramId> = candidates
            .iter()
            .filter(|(r, _)| r.event == Event::Sale)
            .map(|(r, _)| r.program_id)
            .collect();
        programs.sort_unstable();
        programs.dedup();
        let mut signals = Signals::default();
        if !pairs.is_empty() {
            let clicks: Vec<&str> = pairs.iter().map(|p| p.1).collect();
            signals.flagged = sqlx::query_scalar!(
                "select click_id from flagged_clicks where click_id = any($1)",
                &clicks as &[&str]
            )
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            // The conversions with these click ids are found by click id
            // alone, one probe of the click index per distinct click id,
            // before the program is matched: a click id is nearly unique,
            // so that reads next to nothing more. Given the event or the
            // program as well, the planner (with a table's statistics
            // behind its growth) AND-ed in a scan of the whole order index,
            // then of the program's index, for every pair; given the ids as
            // one array, it scanned the whole table while the table was
            // young (up to 30 ms a batch at 50,000 conversions, where the
            // probes take about 1 ms). `offset 0` keeps the lateral
            // subquery a probe per click id instead of a join the planner
            // may turn into a scan.
            for r in sqlx::query!(
                r#"with hits as materialized (
                       select h.id, h.program_id, h.click_id, h.event
                       from (select distinct k from unnest($2::text[]) as k) as k(click_id)
                       cross join lateral (
                           select id, program_id, click_id, event from conversions
                           where click_id = k.click_id offset 0) h)
                   select c.program_id as "program_id!: ProgramId", c.click_id as "click_id!",
                          count(*) filter (where c.event in ('sale', 'lead')) as "orders!",
                          min(c.id) filter (where c.event = 'lead') as "first_lead: ConversionId"
                   from hits c
                   join unnest($1::bigint[], $2::text[]) as q(program_id, click_id)
                     on c.program_id = q.program_id and c.click_id = q.click_id
                   group by c.program_id, c.click_id"#,
                &pairs.iter().map(|p| p.0).collect::<Vec<_>>(),
                &clicks as &[&str]
            )
            .fetch_all(&mut *tx)
            .await?
            {
                let key = (r.program_id, r.click_id);
                if let Some(first) = r.first_lead {
                    signals.first_lead.insert(key.clone(), first);
                }
                signals.orders_per_click.insert(key, r.orders);
            }
        }
        signals.sale_average = averages.get(tx, &programs).await?;
        Ok(signals)
    }

    /// A lead whose click already produced an earlier lead in the same program.
    pub(crate) fn is_repeat_lead(&self, row: &Claimed, click: Option<&str>) -> bool {
        click
            .and_then(|c| self.first_lead.get(&(row.program_id, c.to_owned())))
            .is_some_and(|first| *first != row.id)
    }

    /// The reasons to hold this conversion for review, if any.
    pub(crate) fn check(
        &self,
        row: &Claimed,
        click: Option<&str>,
        clicked_at: Option<DateTime<Utc>>,
        settings: &FraudSettings,
    ) -> Vec<FraudSignal> {
        let mut reasons = Vec::new();
        if let Some(at) = clicked_at
            && (row.occurred_at - at).num_seconds() < settings.min_click_seconds
        {
            reasons.push(FraudSignal::TooFast);
        }
        if let Some(click) = click {
            if self.flagged.contains(click) {
                reasons.push(FraudSignal::BotClick);
            }
            if self
                .orders_per_click
                .get(&(row.program_id, click.to_owned()))
                .is_some_and(|n| *n > settings.max_orders_per_click)
            {
                reasons.push(FraudSignal::ClickReused);
            }
        }
        if row.event == Event::Sale
            && let Some((average, sales)) = self.sale_average.get(&row.program_id)
            && *sales >= settings.amount_min_samples
            && i128::from(row.amount_minor)
                > i128::from(*average) * i128::from(settings.amount_factor)
        {
            reasons.push(FraudSignal::AmountOutlier);
        }
        reasons
    }
}
