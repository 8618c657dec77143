//! /v1/programs: create, read and list programs; change their terms (a new
//! version each time) and read every version.

use super::pagination::{Cursor, List, Page};
use super::validate::Checker;
use crate::domain::{
    Currency, DomainsError, KeyOwner, LandingDomains, Name, NewApiKey, ProgramId, TextRule, WebUrl,
    new_webhook_secret,
};
use crate::http::auth::Principal;
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::programs::{
    self, Listing, NewProgram, Program, ProgramVersion, TermsChange, WriteError,
};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

/// A page of programs, as the OpenAPI document names it.
type ProgramPage = List<Program>;
/// Every version of a program's terms, as the OpenAPI document names it.
type ProgramVersionPage = List<ProgramVersion>;

pub const DEFAULT_WINDOW_DAYS: i64 = 30;
pub const DEFAULT_HOLD_DAYS: i64 = 30;

/// A new program.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProgram {
    #[schema(value_type = crate::domain::Name)]
    name: String,
    #[schema(value_type = crate::domain::Currency)]
    currency: String,
    /// 1 to 50 host names shoppers may land on; matched exactly.
    #[schema(value_type = Vec<crate::domain::LandingDomain>, min_items = 1, max_items = 50)]
    landing_domains: Vec<String>,
    /// Where links land by default; its host must be one of `landing_domains`.
    #[schema(value_type = WebUrl)]
    default_url: String,
    /// How long after a click a conversion is attributed to it, 1 to 365.
    #[serde(default = "default_window")]
    #[schema(minimum = 1, maximum = 365, default = 30)]
    attribution_window_days: i64,
    /// How long a commission stays pending before it is approved, 0 to 365.
    #[serde(default = "default_hold")]
    #[schema(minimum = 0, maximum = 365, default = 30)]
    hold_days: i64,
    #[schema(value_type = crate::domain::CommissionRules)]
    commission: serde_json::Value,
    /// List the program to partners, who may then apply (default false).
    #[serde(default)]
    public: bool,
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    description: Option<String>,
    /// Days a rejected applicant waits before applying again, 0 to 365.
    #[serde(default = "default_cooldown")]
    #[schema(minimum = 0, maximum = 365, default = 30)]
    reapply_cooldown_days: i64,
}

/// What partners read about a program.
const DESCRIPTION: TextRule = TextRule::lines(5000);

fn description_schema() -> utoipa::openapi::schema::ObjectBuilder {
    DESCRIPTION.schema(false).description(Some(
        "What partners read about the program: at most 5000 characters, lines separated by \
         `\\n`, no other control characters; empty or only whitespace: none.",
    ))
}

fn default_cooldown() -> i64 {
    30
}

/// How a program shows itself to partners.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ProgramListing)]
#[serde(deny_unknown_fields)]
pub struct ListingBody {
    /// Listed to partners, who may apply.
    public: bool,
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    description: Option<String>,
    /// Days a rejected applicant waits before applying again, 0 to 365.
    #[serde(default = "default_cooldown")]
    #[schema(minimum = 0, maximum = 365, default = 30)]
    reapply_cooldown_days: i64,
}

impl ListingBody {
    fn parse(self, c: &mut Checker) -> Option<Listing> {
        listing(c, self.public, self.description, self.reapply_cooldown_days)
    }
}

fn listing(
    c: &mut Checker,
    public: bool,
    description: Option<String>,
    cooldown: i64,
) -> Option<Listing> {
    let description = description.and_then(|d| {
        c.check("description", DESCRIPTION.parse(&d))
            .flatten()
            .map(str::to_owned)
    });
    let cooldown = c.check("reapply_cooldown_days", days(cooldown, 0, "from 0 to 365"))?;
    Some(Listing {
        public,
        description,
        reapply_cooldown_days: cooldown,
    })
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
        let default_url = c.check("default_url", WebUrl::parse_plain(&self.default_url));
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
        let listing = listing(
            &mut c,
            self.public,
            self.description,
            self.reapply_cooldown_days,
        );
        c.finish(|| {
            Some(NewProgram {
                name: name?,
                currency: currency?,
                landing_domains: landing?,
                default_url: default_url?,
                attribution_window_days: window?,
                hold_days: hold?,
                commission: commission?,
                listing: listing?,
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

/// A program just created, with its credentials.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedProgram {
    #[serde(flatten)]
    program: Program,
    /// The program's API key (`mitra_prg_...`). Shown once: only its hash is stored.
    #[schema(examples("mitra_prg_3kT9..."))]
    api_key: String,
    /// Signs the shop's conversion webhooks (`whsec_...`).
    #[schema(examples("whsec_8Qm2..."))]
    webhook_secret: String,
}

/// Create a program
///
/// Answers 201 with the program's API key and webhook secret, shown only now.
#[utoipa::path(
    post,
    path = "/v1/programs",
    operation_id = "createProgram",
    tag = "programs",
    request_body = CreateProgram,
    responses(
        (status = 201, description = "Created.", body = CreatedProgram,
            headers(("Location" = String, description = "`/v1/programs/{id}`"))),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let new = body.json::<CreateProgram>()?.parse()?;
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

/// Read a program
#[utoipa::path(
    get,
    path = "/v1/programs/{id}",
    operation_id = "getProgram",
    tag = "programs",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    responses(
        (status = 200, description = "The program.", body = Program),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let program = super::program_in_path(&state, who, &path).await?;
    Ok(HttpResponse::Ok().json(program))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Rows per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    cursor: Option<Cursor>,
}

/// List programs
///
/// The admin sees every program; a program key sees its own.
#[utoipa::path(
    get,
    path = "/v1/programs",
    operation_id = "listPrograms",
    tag = "programs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of programs.", body = ProgramPage),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(query.limit, query.cursor)?;
    let only = match who {
        Principal::Admin => None,
        Principal::Program(p) => Some(p),
        Principal::Partner(_) => return Err(ApiError::Forbidden("partners cannot list programs")),
    };
    let rows = programs::list(&state.db, only, page.after, page.fetch()).await?;
    Ok(HttpResponse::Ok().json(List::from_rows(rows, page, |p| p.id.get())))
}

/// Change how a program shows itself to partners
///
/// PUT /v1/programs/{id}/listing: whether partners find it and may apply,
/// what they read about it, and how long a rejected applicant waits.
#[utoipa::path(
    put,
    path = "/v1/programs/{id}/listing",
    operation_id = "setProgramListing",
    tag = "programs",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body = ListingBody,
    responses(
        (status = 200, description = "The program.", body = Program),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn set_listing(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let program = super::program_in_path(&state, who, &path).await?.id;
    let body: ListingBody = body.json()?;
    let mut c = Checker::new();
    let listing = body.parse(&mut c);
    let listing = c.finish(|| listing)?;
    let program = programs::set_listing(&state.db, program, &listing)
        .await?
        .ok_or(ApiError::NotFound("program"))?;
    Ok(HttpResponse::Ok().json(program))
}

/// A program as partners looking for one see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicProgram {
    id: ProgramId,
    name: String,
    currency: crate::domain::Currency,
    description: Option<String>,
    #[schema(format = "uri")]
    default_url: String,
    landing_domains: Vec<String>,
    attribution_window_days: i32,
    hold_days: i32,
    #[schema(value_type = crate::domain::CommissionRules)]
    commission: serde_json::Value,
}

/// A page of public programs, as the OpenAPI document names it.
type PublicProgramPage = List<PublicProgram>;

/// List public programs
///
/// GET /v1/public-programs: the programs partners may apply to, with their
/// terms.
#[utoipa::path(
    get,
    path = "/v1/public-programs",
    operation_id = "listPublicPrograms",
    tag = "programs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of public programs.", body = PublicProgramPage),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn list_public(
    state: web::Data<AppState>,
    _who: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(query.limit, query.cursor)?;
    let rows = programs::list_public(&state.db, page.after, page.fetch()).await?;
    let list = List::from_rows(rows, page, |p| p.id.get());
    Ok(HttpResponse::Ok().json(List {
        data: list
            .data
            .into_iter()
            .map(|p| PublicProgram {
                id: p.id,
                name: p.name,
                currency: p.currency,
                description: p.description,
                default_url: p.default_url,
                landing_domains: p.landing_domains,
                attribution_window_days: p.attribution_window_days,
                hold_days: p.hold_days,
                commission: p.commission,
            })
            .collect::<Vec<_>>(),
        next_cursor: list.next_cursor,
    }))
}

/// A change of a program's terms. What is given makes version n+1 of the
/// terms; what is absent keeps its current value.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ProgramTermsFields)]
#[serde(deny_unknown_fields)]
pub struct PatchProgram {
    /// The new commission rules (replacing the current ones as a whole).
    #[serde(default)]
    #[schema(value_type = Option<crate::domain::CommissionRules>)]
    commission: Option<serde_json::Value>,
    /// 1 to 365.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    attribution_window_days: Option<i64>,
    /// 0 to 365.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 365)]
    hold_days: Option<i64>,
    /// The version the change is based on; a newer one answers 409.
    #[serde(default)]
    base_version: Option<i32>,
}

/// The change as documented: its fields, at least one of the terms among
/// them (`PatchProgram::parse` refuses a change of nothing, 422).
struct PatchProgramDoc;

impl utoipa::PartialSchema for PatchProgramDoc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Ref, Type};
        let given = |field: &str, schema_type: Type| {
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(schema_type))
                .required(field)
        };
        AllOfBuilder::new()
            .description(Some(
                "A change of the program's terms: at least one of `commission`, \
                 `attribution_window_days` and `hold_days`.",
            ))
            .item(Ref::from_schema_name("ProgramTermsFields"))
            .item(
                AnyOfBuilder::new()
                    .item(given("commission", Type::Object))
                    .item(given("attribution_window_days", Type::Integer))
                    .item(given("hold_days", Type::Integer)),
            )
            .into()
    }
}

impl utoipa::ToSchema for PatchProgramDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "PatchProgram".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("ProgramTermsFields".into(), PatchProgram::schema()));
        <PatchProgram as utoipa::ToSchema>::schemas(schemas);
    }
}

impl PatchProgram {
    fn parse(&self) -> Result<TermsChange, ApiError> {
        let mut c = Checker::new();
        if self.commission.is_none()
            && self.attribution_window_days.is_none()
            && self.hold_days.is_none()
        {
            c.fail(
                "commission",
                "nothing to change: give commission, attribution_window_days or hold_days",
            );
        }
        let commission = self.commission.as_ref().map(|v| c.rules("commission", v));
        let window = self
            .attribution_window_days
            .map(|d| c.check("attribution_window_days", days(d, 1, "from 1 to 365")));
        let hold = self
            .hold_days
            .map(|d| c.check("hold_days", days(d, 0, "from 0 to 365")));
        c.finish(|| {
            Some(TermsChange {
                commission: commission.map(|r| r.ok_or(())).transpose().ok()?,
                attribution_window_days: window.map(|w| w.ok_or(())).transpose().ok()?,
                hold_days: hold.map(|h| h.ok_or(())).transpose().ok()?,
            })
        })
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::StaleVersion { .. } => ApiError::Conflict(e.to_string()),
            WriteError::NotFound => ApiError::NotFound("program"),
            WriteError::Db(e) => e.into(),
        }
    }
}

/// Change a program's terms
///
/// Makes version n+1 of the program's terms (commission rules, attribution
/// window, hold days) and answers the program. Earlier versions stay
/// readable; a conversion is priced under the version in force when it
/// happened, and its commissions record that version.
#[utoipa::path(
    patch,
    path = "/v1/programs/{id}",
    operation_id = "changeProgramTerms",
    tag = "programs",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body = PatchProgramDoc,
    responses(
        (status = 200, description = "The program at its new terms version.", body = Program),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn update(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let id = super::program_in_path(&state, who, &path).await?.id;
    let body: PatchProgram = body.json()?;
    let change = body.parse()?;
    let actor = match who {
        Principal::Program(p) => p.to_string(),
        _ => "admin".to_owned(),
    };
    let program = programs::new_version(&state.db, id, body.base_version, &change, &actor).await?;
    tracing::info!(program = %id, version = program.terms_version, "program terms changed");
    Ok(HttpResponse::Ok().json(program))
}

/// Which partners may read a program's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readers {
    /// Its active members, and partners of any of its agreements (whose
    /// commissions name its versions).
    MembersAndPast,
    /// Its active members only.
    Members,
}

/// The program in the path, when `who` may read its terms: the admin, the
/// program itself, or a partner among `readers`.
pub(crate) async fn readable(
    state: &AppState,
    who: Principal,
    raw: &str,
    readers: Readers,
) -> Result<Program, ApiError> {
    let id = super::path_id::<ProgramId>(raw, "program")?;
    if let Principal::Partner(partner) = who {
        let member = crate::enrollments::is_active(&state.db, id, partner).await?;
        let past = readers == Readers::MembersAndPast
            && !member
            && crate::agreements::partner_in_program(&state.db, id, partner).await?;
        if !member && !past {
            return Err(ApiError::NotFound("program"));
        }
    } else {
        who.require_program(id)?;
    }
    programs::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("program"))
}

/// List a program's terms versions
///
/// Every version, oldest first, in one page.
#[utoipa::path(
    get,
    path = "/v1/programs/{id}/versions",
    operation_id = "listProgramVersions",
    tag = "programs",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    responses(
        (status = 200, description = "Every version.", body = ProgramVersionPage),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn versions(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let program = readable(&state, who, &path, Readers::MembersAndPast).await?;
    let all = programs::versions(&state.db, program.id, None).await?;
    Ok(HttpResponse::Ok().json(List {
        data: all,
        next_cursor: None,
    }))
}

/// Read one version of a program's terms
#[utoipa::path(
    get,
    path = "/v1/programs/{id}/versions/{version}",
    operation_id = "getProgramVersion",
    tag = "programs",
    params(
        ("id" = ProgramId, Path, description = "The program's id."),
        ("version" = i32, Path, minimum = 1, description = "The version, from 1."),
    ),
    responses(
        (status = 200, description = "That version.", body = ProgramVersion),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn version(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let program = readable(&state, who, &path.0, Readers::MembersAndPast).await?;
    let n: i32 = path
        .1
        .parse()
        .map_err(|_| ApiError::NotFound("program version"))?;
    let version = programs::versions(&state.db, program.id, Some(n))
        .await?
        .pop()
        .ok_or(ApiError::NotFound("program version"))?;
    Ok(HttpResponse::Ok().json(version))
}
