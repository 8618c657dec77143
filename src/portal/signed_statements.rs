//! Verifiable statements in the portal: a partner downloads each program's
//! signed statement of its entries and checks it offline with `mitra
//! verify-statement` and the program's public key, both shown on the
//! statement page. The same statement as the API's
//! `GET /v1/programs/{id}/partners/{partner_id}/statement`, for partners
//! who use the portal and hold no API key.

use super::web::{PortalError, Visitor};
use crate::domain::ProgramId;
use crate::enrollments::{self, Enrollment};
use crate::http::state::AppState;
use crate::statements::{self, StatementError, keys};
use actix_web::http::header;
use actix_web::{HttpResponse, web};

/// One program's line in the page's "verifiable statements" section.
pub struct SignedRow {
    pub program: String,
    pub href: String,
    pub public_key: String,
}

/// A line for every program the partner was ever active in, with the
/// program's published key (published now if it never was).
pub async fn rows(state: &AppState, ms: &[Enrollment]) -> Result<Vec<SignedRow>, PortalError> {
    // One enrollment per program and partner (a unique index): no repeats.
    let mut programs: Vec<&Enrollment> = ms.iter().filter(|e| e.active_since.is_some()).collect();
    programs.sort_by(|a, b| a.program_name.cmp(&b.program_name));
    let mut rows = Vec::with_capacity(programs.len());
    if programs.is_empty() {
        return Ok(rows);
    }
    let mut conn = state.db.acquire().await?;
    for e in programs {
        let (_, published) = keys::current(&mut conn, &state.statement_keys, e.program_id)
            .await
            .map_err(|e| PortalError::Internal(e.into()))?;
        rows.push(SignedRow {
            program: e.program_name.clone(),
            href: format!("/portal/partner/programs/{}/signed-statement", e.program_id),
            public_key: published.public_key,
        });
    }
    Ok(rows)
}

/// GET /portal/partner/programs/{id}/signed-statement: the signed-in
/// partner's whole signed statement of the program, as a JSON file.
pub async fn download(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let partner = visitor.partner()?;
    let program: ProgramId = path.parse().map_err(|_| PortalError::NotFound)?;
    if !enrollments::ever_enrolled(&state.db, program, partner).await? {
        return Err(PortalError::NotFound);
    }
    let statement =
        match statements::signed(&state.db, &state.statement_keys, program, partner, 0, None).await
        {
            Ok(s) => s,
            Err(StatementError::TooLong(max)) => {
                return Err(PortalError::BadRequest(format!(
                    "the statement has more than {max} entries: read it in parts through the API \
                     (GET /v1/programs/{program}/partners/{partner}/statement?after_seq=)"
                )));
            }
            Err(StatementError::Db(e)) => return Err(e.into()),
            Err(e) => return Err(PortalError::Internal(e.into())),
        };
    let name = format!("statement-{program}-{partner}-{}.json", statement.head.seq);
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .json(statement))
}
