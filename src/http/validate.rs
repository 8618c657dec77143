//! Collecting field errors while parsing a request into domain types, so one
//! 422 answer lists every invalid field at once.

use crate::domain::CommissionRules;
use crate::http::error::{ApiError, FieldError};
use std::fmt::Display;

#[derive(Default)]
pub struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value, or records the error under `field`.
    pub fn check<T, E: Display>(
        &mut self,
        field: impl Into<String>,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(field, e);
                None
            }
        }
    }

    pub fn fail(&mut self, field: impl Into<String>, message: impl Display) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.to_string(),
        });
    }

    /// Commission rules, with errors under `field.event` (e.g. `commission.sale`).
    pub fn rules(&mut self, field: &str, value: &serde_json::Value) -> Option<CommissionRules> {
        match CommissionRules::parse(value) {
            Ok(rules) => Some(rules),
            Err(e) if e.path.is_empty() => {
                self.fail(field, e.message);
                None
            }
            Err(e) => {
                self.fail(format!("{field}.{}", e.path), e.message);
                None
            }
        }
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// 422 with every recorded error, or the value `build` assembles from the
    /// checked parts (all present when nothing failed).
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ApiError> {
        if !self.errors.is_empty() {
            return Err(ApiError::Validation(self.errors));
        }
        build().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a checked field has no value")))
    }
}
