//! /v1/programs: create, read and list programs.

use super::pagination::{List, Page};
use super::validate::Checker;
use crate::auth::Principal;
use crate::domain::{
    Currency, DomainsError, KeyOwner, LandingDomains, Name, NewApiKey, ProgramId, WebUrl,
    new_webhook_secret,
};
use crate::error::ApiError;
use crate::programs::{self, NewProgram, Program};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

pub const DEFAULT_WINDOW_DAYS: i64 = 30;
pub const DEFAULT_HOLD_DAYS: i64 = 30;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProgram {
    name: String,
    currency: String,
    landing_domains: Vec<String>,
    default_url: String,
    #[serde(default = "default_window")]
    attribution_window_days: i64,
    #[serde(default = "default_hold")]
    hold_days: i64,
    commission: serde_json::Value,
}

fn default_window() -> i64 {
    DEFAULT_WINDOW_DAYS
}

fn default_hold() -> i64 {
    DEFAULT_HOLD_DAYS
}

impl CreateProgram {
    fn parse(self) -> Result<NewProgram, ApiError> {
        let mut c = Checker::new();
        let name = c.check("name", Name::parse(&self.name));
        let currency = c.check("currency", Currency::parse(&self.currency));
        let landing = match LandingDomains::parse(&self.landing_domains) {
            Ok(d) => Some(d),
            Err(DomainsError::Item(i, e)) => {
                c.fail(format!("landing_domains[{i}]"), e);
                None
            }
            Err(e) => {
                c.fail("landing_domains", e);
                None
            }
        };
        let default_url = c.check("default_url", WebUrl::parse(&self.default_url));
        if let (Some(landing), Some(url)) = (&landing, &default_url)
            && !landing.allows(url)
        {
            c.fail("default_url", "host must be one of landing_domains");
        }
        let window = c.check(
            "attribution_window_days",
            days(self.attribution_window_days, 1, "from 1 to 365"),
        );
        let hold = c.check("hold_days", days(self.hold_days, 0, "from 0 to 365"));
        let commission = c.rules("commission", &self.commission);
        c.finish(|| {
            Some(NewProgram {
                name: name?,
                currency: currency?,
                landing_domains: landing?,
                default_url: default_url?,
                attribution_window_days: window?,
                hold_days: hold?,
                commission: commission?,
            })
        })
    }
}

fn days(n: i64, min: i64, range: &'static str) -> Result<i32, String> {
    if (min..=365).contains(&n) {
        Ok(n as i32)
    } else {
        Err(format!("must be a whole number of days {range}"))
    }
}

#[derive(Serialize)]
struct CreatedProgram {
    #[serde(flatten)]
    program: Program,
    /// Shown once: only its hash is stored.
    api_key: String,
    webhook_secret: String,
}

pub async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: web::Json<CreateProgram>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let new = body.into_inner().parse()?;
    let key = NewApiKey::generate(KeyOwner::Program);
    let secret = new_webhook_secret();
    let program = programs::insert(&state.db, &new, &key.hash, &secret).await?;
    tracing::info!(program = %program.id, "program created");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/programs/{}", program.id)))
        .json(CreatedProgram {
            program,
            api_key: key.plaintext,
            webhook_secret: secret,
        }))
}

pub async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::path_id::<ProgramId>(&path, "program")?;
    who.require_program(id)?;
    let program = programs::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("program"))?;
    Ok(HttpResponse::Ok().json(program))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The admin sees every program; a program key sees its own.
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(query.limit, query.cursor.as_deref())?;
    let only = match who {
        Principal::Admin => None,
        Principal::Program(p) => Some(p),
        Principal::Partner(_) => return Err(ApiError::Forbidden("partners cannot list programs")),
    };
    let rows = programs::list(&state.db, only, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(List::from_rows(rows, page, |p| p.id.get())))
}
