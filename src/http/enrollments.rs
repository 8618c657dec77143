//! Enrollments: a program invites partners, partners apply to public
//! programs, and either side moves the membership along.
//!
//! Who may do what: the program (or the admin) invites, approves, rejects,
//! deactivates and bans; the partner (or the admin) accepts, declines and
//! applies. Anyone else is told the membership does not exist. A program
//! sees an invited partner's name only once it has accepted (or applied
//! itself), so an invitation is no way to read partners' names.

use super::pagination::{Cursor, List, Page};
use super::validate::Checker;
use crate::domain::{
    Email, EnrollmentAction, EnrollmentId, EnrollmentReason, EnrollmentStatus, PartnerId,
    ProgramId, TextRule,
};
use crate::enrollments::{self, Decision, EnrollError, Enrollment, Invitee, Side};
use crate::http::auth::Principal;
use crate::http::body::Body;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};

/// A page of enrollments, as the OpenAPI document names it.
type EnrollmentPage = List<EnrollmentView>;

/// A note or an application's text.
const NOTE: TextRule = TextRule::lines(2000);

fn note_schema() -> utoipa::openapi::schema::ObjectBuilder {
    NOTE.schema(false).description(Some(
        "At most 2000 characters, lines separated by `\\n`, no other control characters; \
         empty or only whitespace: none.",
    ))
}

/// A partner's membership of a program, as the caller may see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Enrollment)]
pub struct EnrollmentView {
    id: EnrollmentId,
    program_id: ProgramId,
    program_name: String,
    /// Null for an e-mail invitation nobody has accepted yet.
    partner_id: Option<PartnerId>,
    /// Shown to the program once the partner has applied or accepted.
    partner_name: Option<String>,
    /// The address an e-mail invitation went to.
    #[schema(value_type = Option<Email>)]
    email: Option<String>,
    status: EnrollmentStatus,
    /// What the partner wrote when applying.
    application_note: Option<String>,
    /// The reason of the last rejection, deactivation or ban.
    reason_code: Option<EnrollmentReason>,
    /// The note that came with the last move, for the other side to read.
    note: Option<String>,
    /// After a rejection: when the partner may apply again.
    reapply_after: Option<DateTime<Utc>>,
    active_since: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl EnrollmentView {
    fn for_caller(e: Enrollment, who: Principal) -> Self {
        let named = matches!(who, Principal::Admin | Principal::Partner(_))
            || !matches!(
                e.status,
                EnrollmentStatus::Invited | EnrollmentStatus::Declined
            );
        EnrollmentView {
            id: e.id,
            program_id: e.program_id,
            program_name: e.program_name,
            partner_id: e.partner_id,
            partner_name: e.partner_name.filter(|_| named),
            email: e.email,
            status: e.status,
            application_note: e.application_note,
            reason_code: e.reason_code,
            note: e.note,
            reapply_after: e.reapply_after,
            active_since: e.active_since,
            ended_at: e.ended_at,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// A membership with its history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnrollmentWithEvents {
    #[serde(flatten)]
    enrollment: EnrollmentView,
    /// Every move, oldest first, with who, when and why.
    events: Vec<enrollments::Event>,
}

/// An invitation just made.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Invitation {
    #[serde(flatten)]
    enrollment: EnrollmentView,
    /// The link the partner opens to accept (on `MITRA_PUBLIC_URL`). Shown once.
    #[schema(
        format = "uri",
        examples("https://go.shop.example/portal/invitations/3kT9...")
    )]
    accept_url: String,
}

/// Whom to invite: a partner by id, or anyone by e-mail.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    #[serde(default)]
    partner_id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// In the OpenAPI document: exactly one of `partner_id` and `email` (the
/// other absent or null), as `invite` requires.
impl utoipa::PartialSchema for InviteBody {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, OneOfBuilder};
        let nullable = |name: &str| {
            OneOfBuilder::new()
                .item(Ref::from_schema_name(name))
                .item(ObjectBuilder::new().schema_type(Type::Null))
        };
        let fields = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("partner_id", nullable("PartnerId"))
            .property("email", nullable("Email"))
            .property(
                "note",
                note_schema().description(Some("A message for the partner.")),
            )
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
        let one = |given: &str, schema: &str, absent: &str| {
            ObjectBuilder::new()
                .property(given, Ref::from_schema_name(schema))
                .required(given)
                .property(absent, ObjectBuilder::new().schema_type(Type::Null))
        };
        AllOfBuilder::new()
            .description(Some(
                "Whom to invite: a partner by `partner_id`, or anyone by `email` (exactly one).",
            ))
            .item(fields)
            .item(
                OneOfBuilder::new()
                    .item(one("partner_id", "PartnerId", "email"))
                    .item(one("email", "Email", "partner_id")),
            )
            .into()
    }
}

impl utoipa::ToSchema for InviteBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "NewInvitation".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push(("PartnerId".into(), PartnerId::schema()));
        schemas.push(("Email".into(), Email::schema()));
    }
}

/// A partner's application to a public program.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = NewApplication)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// Why the program should take this partner on.
    #[serde(default)]
    #[schema(schema_with = note_schema)]
    note: Option<String>,
}

/// A decision on a membership. A rejection, a deactivation and a ban need a
/// reason code; the note is shown to the partner.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = EnrollmentDecision)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[serde(default)]
    reason_code: Option<EnrollmentReason>,
    /// For the other side to read.
    #[serde(default)]
    #[schema(schema_with = note_schema)]
    note: Option<String>,
}

/// A rejection, deactivation or ban: a decision whose `reason_code` is
/// required. Only documents the body, which is read as a `DecisionBody`
/// (the derive states the same unknown-field rule).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ReasonedDecision {
    reason_code: EnrollmentReason,
    /// For the partner to read.
    #[schema(schema_with = note_schema)]
    note: Option<String>,
}

fn note(c: &mut Checker, field: &str, note: Option<String>) -> Option<String> {
    let note = note?;
    c.check(field, NOTE.parse(&note))
        .flatten()
        .map(str::to_owned)
}

fn actor(who: Principal) -> String {
    match who {
        Principal::Admin => "admin".into(),
        Principal::Program(p) => p.to_string(),
        Principal::Partner(p) => p.to_string(),
    }
}

impl From<EnrollError> for ApiError {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::NotFound(what) => ApiError::NotFound(what),
            // The body names it, not the path: the program is there.
            EnrollError::UnknownPartner => ApiError::invalid("partner_id", "no such partner"),
            EnrollError::Move(m) => ApiError::Conflict(m.to_string()),
            EnrollError::Conflict(m) => ApiError::Conflict(m),
            EnrollError::Db(e) => e.into(),
        }
    }
}

fn accept_url(state: &AppState, token: &str) -> String {
    format!(
        "{}/portal/invitations/{token}",
        state.settings.public_base()
    )
}

async fn load(state: &AppState, id: EnrollmentId) -> Result<Enrollment, ApiError> {
    enrollments::get(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("enrollment"))
}

/// The membership, when `who` is one of its sides (or the admin). An
/// e-mail invitation belongs to the partner whose address it went to.
async fn visible(state: &AppState, who: Principal, id: &str) -> Result<Enrollment, ApiError> {
    let id = super::path_id::<EnrollmentId>(id, "enrollment")?;
    let e = load(state, id).await?;
    let allowed = match who {
        Principal::Admin => true,
        Principal::Program(p) => p == e.program_id,
        Principal::Partner(p) => match e.partner_id {
            Some(owner) => owner == p,
            None => addressed_to(state, &e, p).await?,
        },
    };
    allowed.then_some(e).ok_or(ApiError::NotFound("enrollment"))
}

async fn addressed_to(
    state: &AppState,
    e: &Enrollment,
    partner: PartnerId,
) -> Result<bool, ApiError> {
    let Some(email) = &e.email else {
        return Ok(false);
    };
    Ok(crate::partners::get(&state.db, partner)
        .await?
        .is_some_and(|p| p.email.eq_ignore_ascii_case(email)))
}

/// Invite a partner
///
/// POST /v1/programs/{id}/enrollments: invites a partner by id, or anyone
/// by e-mail. Answers the `accept_url` the partner opens (shown once).
/// Inviting again renews it.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/enrollments",
    operation_id = "invitePartner",
    tag = "enrollments",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body = InviteBody,
    responses(
        (status = 201, description = "Invited.", body = Invitation),
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
pub async fn invite(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let program = super::program_in_path(&state, who, &path).await?.id;
    let body: InviteBody = body.json()?;
    let mut c = Checker::new();
    let invitee = match (&body.partner_id, &body.email) {
        (Some(id), None) => c
            .check("partner_id", PartnerId::parse(id))
            .map(Invitee::Partner),
        (None, Some(email)) => c.check("email", Email::parse(email)).map(Invitee::Email),
        _ => {
            c.fail("partner_id", "give either partner_id or email");
            None
        }
    };
    let note = note(&mut c, "note", body.note);
    let invitee = c.finish(|| invitee)?;
    let decision = Decision {
        actor: actor(who),
        reason_code: None,
        note,
    };
    let (id, token) = enrollments::invite(&state.db, program, &invitee, &decision).await?;
    tracing::info!(enrollment = %id, program = %program, "partner invited");
    let enrollment = EnrollmentView::for_caller(load(&state, id).await?, who);
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/enrollments/{id}")))
        .json(Invitation {
            enrollment,
            accept_url: accept_url(&state, &token),
        }))
}

/// Apply to a public program
///
/// POST /v1/programs/{id}/applications: the partner asks to join; the
/// program approves or rejects. A program that is not public answers 404.
#[utoipa::path(
    post,
    path = "/v1/programs/{id}/applications",
    operation_id = "applyToProgram",
    tag = "enrollments",
    params(("id" = ProgramId, Path, description = "The program's id.")),
    request_body(content = Option<ApplyBody>, description = "Optional."),
    responses(
        (status = 201, description = "Applied.", body = EnrollmentView),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 408, response = crate::http::openapi::RequestTimeout),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 413, response = crate::http::openapi::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
        (status = 422, response = crate::http::openapi::ValidationFailed),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("partner_key" = []))
)]
pub async fn apply(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let program = super::path_id::<ProgramId>(&path, "program")?;
    let Principal::Partner(partner) = who else {
        return Err(ApiError::Forbidden("only a partner applies to a program"));
    };
    let body = body.optional_json::<ApplyBody>()?.unwrap_or_default();
    let mut c = Checker::new();
    let note = note(&mut c, "note", body.note);
    c.finish(|| Some(()))?;
    let id = enrollments::apply(&state.db, program, partner, note.as_deref()).await?;
    tracing::info!(enrollment = %id, program = %program, "partner applied");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/enrollments/{id}")))
        .json(EnrollmentView::for_caller(load(&state, id).await?, who)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Rows per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    cursor: Option<Cursor>,
    /// Only memberships in this status.
    status: Option<EnrollmentStatus>,
}

/// List a program's partners and applicants
///
/// GET /v1/programs/{id}/enrollments?status=applied: the review queue.
#[utoipa::path(
    get,
    path = "/v1/programs/{id}/enrollments",
    operation_id = "listProgramEnrollments",
    tag = "enrollments",
    params(("id" = ProgramId, Path, description = "The program's id."), ListQuery),
    responses(
        (status = 200, description = "A page of enrollments.", body = EnrollmentPage),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []))
)]
pub async fn list_for_program(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let program = super::program_in_path(&state, who, &path).await?.id;
    list(&state, who, Side::Program(program), &query).await
}

/// List a partner's memberships and invitations
///
/// GET /v1/partners/{id}/enrollments: its memberships, and invitations sent
/// to its e-mail address.
#[utoipa::path(
    get,
    path = "/v1/partners/{id}/enrollments",
    operation_id = "listPartnerEnrollments",
    tag = "enrollments",
    params(("id" = PartnerId, Path, description = "The partner's id."), ListQuery),
    responses(
        (status = 200, description = "A page of enrollments.", body = EnrollmentPage),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("partner_key" = []))
)]
pub async fn list_for_partner(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let partner = super::path_id::<PartnerId>(&path, "partner")?;
    who.require_partner(partner)?;
    list(&state, who, Side::Partner(partner), &query).await
}

async fn list(
    state: &AppState,
    who: Principal,
    side: Side,
    query: &ListQuery,
) -> Result<HttpResponse, ApiError> {
    let page = Page::parse(query.limit, query.cursor)?;
    let rows = enrollments::list(&state.db, side, query.status, page.after, page.fetch()).await?;
    let list = List::from_rows(rows, page, |e| e.id.get());
    Ok(HttpResponse::Ok().json(List {
        data: list
            .data
            .into_iter()
            .map(|e| EnrollmentView::for_caller(e, who))
            .collect::<Vec<_>>(),
        next_cursor: list.next_cursor,
    }))
}

/// Read a membership and its history
#[utoipa::path(
    get,
    path = "/v1/enrollments/{id}",
    operation_id = "getEnrollment",
    tag = "enrollments",
    params(("id" = EnrollmentId, Path, description = "The enrollment's id.")),
    responses(
        (status = 200, description = "The membership and every move it went through.",
            body = EnrollmentWithEvents),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("admin_token" = []), ("program_key" = []), ("partner_key" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let e = visible(&state, who, &path).await?;
    let events = enrollments::events(&state.db, e.id).await?;
    Ok(HttpResponse::Ok().json(EnrollmentWithEvents {
        enrollment: EnrollmentView::for_caller(e, who),
        events,
    }))
}

/// Takes `action` on the membership in the path, if `who` is the side that
/// takes it.
async fn decide(
    state: &AppState,
    who: Principal,
    path: &str,
    action: EnrollmentAction,
    body: &Body,
) -> Result<HttpResponse, ApiError> {
    let e = visible(state, who, path).await?;
    let allowed = match who {
        Principal::Admin => true,
        Principal::Partner(_) => action.by_partner(),
        Principal::Program(_) => !action.by_partner(),
    };
    if !allowed {
        return Err(ApiError::Forbidden(if action.by_partner() {
            "only the partner accepts or declines its invitation"
        } else {
            "only the program decides on its partners"
        }));
    }
    let body = body.optional_json::<DecisionBody>()?.unwrap_or_default();
    let mut c = Checker::new();
    let note = note(&mut c, "note", body.note);
    let needs_reason = matches!(
        action,
        EnrollmentAction::Reject | EnrollmentAction::Deactivate | EnrollmentAction::Ban
    );
    if needs_reason && body.reason_code.is_none() {
        c.fail("reason_code", format!("is required to {action}"));
    }
    c.finish(|| Some(()))?;
    if e.partner_id.is_none() {
        // An e-mail invitation is accepted through its link, which binds it.
        return Err(ApiError::Conflict(
            "this invitation went by e-mail: accept it through its accept_url".into(),
        ));
    }
    let decision = Decision {
        actor: actor(who),
        reason_code: body.reason_code,
        note,
    };
    let status = enrollments::act(&state.db, e.id, action, &decision).await?;
    tracing::info!(enrollment = %e.id, %action, %status, "enrollment moved");
    Ok(HttpResponse::Ok().json(EnrollmentView::for_caller(load(state, e.id).await?, who)))
}

macro_rules! decision_endpoint {
    ($name:ident, $action:expr, $path:literal, $op:literal, $summary:literal, $body:tt, $security:tt) => {
        #[doc = $summary]
        #[utoipa::path(
            post,
            path = $path,
            operation_id = $op,
            tag = "enrollments",
            params(("id" = EnrollmentId, Path, description = "The enrollment's id.")),
            request_body $body,
            responses(
                (status = 200, description = "The membership, moved.", body = EnrollmentView),
                (status = 400, response = crate::http::openapi::BadRequest),
                (status = 401, response = crate::http::openapi::Unauthorized),
                (status = 403, response = crate::http::openapi::Forbidden),
                (status = 404, response = crate::http::openapi::NotFound),
                (status = 408, response = crate::http::openapi::RequestTimeout),
                (status = 409, response = crate::http::openapi::Conflict),
                (status = 413, response = crate::http::openapi::PayloadTooLarge),
                (status = 415, response = crate::http::openapi::UnsupportedMediaType),
                (status = 422, response = crate::http::openapi::ValidationFailed),
                (status = 503, response = crate::http::openapi::Unavailable),
                (status = 500, response = crate::http::openapi::Internal),
            ),
            security $security
        )]
        pub async fn $name(
            state: web::Data<AppState>,
            who: Principal,
            path: web::Path<String>,
            body: Body,
        ) -> Result<HttpResponse, ApiError> {
            decide(&state, who, &path, $action, &body).await
        }
    };
}

decision_endpoint!(
    accept,
    EnrollmentAction::Accept,
    "/v1/enrollments/{id}/accept",
    "acceptInvitation",
    "Accept an invitation (the partner)",
    (content = Option<DecisionBody>, description = "Optional."),
    (("admin_token" = []), ("partner_key" = []))
);
decision_endpoint!(
    decline,
    EnrollmentAction::Decline,
    "/v1/enrollments/{id}/decline",
    "declineInvitation",
    "Decline an invitation (the partner)",
    (content = Option<DecisionBody>, description = "Optional."),
    (("admin_token" = []), ("partner_key" = []))
);
decision_endpoint!(
    approve,
    EnrollmentAction::Approve,
    "/v1/enrollments/{id}/approve",
    "approveApplication",
    "Approve an application (the program)",
    (content = Option<DecisionBody>, description = "Optional."),
    (("admin_token" = []), ("program_key" = []))
);
decision_endpoint!(
    reject,
    EnrollmentAction::Reject,
    "/v1/enrollments/{id}/reject",
    "rejectApplication",
    "Reject an application with a reason (the program); the partner may apply again after the program's cooldown",
    (
        content = ReasonedDecision,
        description = "The reason, for the record and the partner."
    ),
    (("admin_token" = []), ("program_key" = []))
);
decision_endpoint!(
    deactivate,
    EnrollmentAction::Deactivate,
    "/v1/enrollments/{id}/deactivate",
    "deactivatePartner",
    "End a membership (the program): links stop, nothing new is earned, history and balance stay",
    (
        content = ReasonedDecision,
        description = "The reason, for the record and the partner."
    ),
    (("admin_token" = []), ("program_key" = []))
);
decision_endpoint!(
    ban,
    EnrollmentAction::Ban,
    "/v1/enrollments/{id}/ban",
    "banPartner",
    "Ban a partner (the program): as a deactivation, and its pending commissions are held for review",
    (
        content = ReasonedDecision,
        description = "The reason, for the record and the partner."
    ),
    (("admin_token" = []), ("program_key" = []))
);

/// Accept or decline an invitation by its link
///
/// POST /v1/invitations/{token}/accept (or `/decline`): the partner whose
/// key calls takes the invitation the link carries; an e-mail invitation
/// becomes that partner's.
#[utoipa::path(
    post,
    path = "/v1/invitations/{token}/{answer}",
    operation_id = "answerInvitation",
    tag = "enrollments",
    params(
        ("token" = String, Path, description = "The token at the end of the `accept_url`."),
        ("answer" = String, Path, description = "`accept` or `decline`.", pattern = "^(accept|decline)$"),
    ),
    responses(
        (status = 200, description = "The membership.", body = EnrollmentView),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 503, response = crate::http::openapi::Unavailable),
        (status = 500, response = crate::http::openapi::Internal),
    ),
    security(("partner_key" = []))
)]
pub async fn answer_invitation(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let accept = match path.1.as_str() {
        "accept" => true,
        "decline" => false,
        _ => return Err(ApiError::NotFound("resource")),
    };
    let Principal::Partner(partner) = who else {
        return Err(ApiError::Forbidden("only a partner answers an invitation"));
    };
    let id = enrollments::accept_token(&state.db, &path.0, partner, accept).await?;
    Ok(HttpResponse::Ok().json(EnrollmentView::for_caller(load(&state, id).await?, who)))
}
