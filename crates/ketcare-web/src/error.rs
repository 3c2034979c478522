//! One error type for every handler. The API renders it as JSON naming the bad fields; pages render
//! it as HTML. Internal details are logged, never sent to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ketcare_core::FieldErrors;
use ketcare_store::StoreError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("sign in first")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A conditional write whose condition (`If-Match`) no longer holds: 412, nothing written.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("some fields are not valid")]
    Invalid(FieldErrors),
    /// Paced: the caller sent more than its share; answered 429 with `Retry-After`.
    #[error("{0}")]
    TooManyRequests(String),
    #[error("something went wrong on our side; it has been logged")]
    Internal,
}

/// The JSON body of every API error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// `unauthorized`, `forbidden`, `not_found`, `conflict`, `invalid`, `too_many_requests` or
    /// `internal`.
    pub error: &'static str,
    pub message: String,
    /// For `invalid`: each bad field and what was expected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<ketcare_core::FieldError>,
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AppError::Unauthorized => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::PreconditionFailed(_) => "precondition_failed",
            AppError::Invalid(_) => "invalid",
            AppError::TooManyRequests(_) => "too_many_requests",
            AppError::Internal => "internal",
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code(),
            message: self.to_string(),
            fields: match self {
                AppError::Invalid(f) => f.0.clone(),
                _ => Vec::new(),
            },
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid(FieldErrors::single(field, message))
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => AppError::NotFound(what),
            StoreError::Forbidden { .. } => AppError::Forbidden(e.to_string()),
            StoreError::Invalid(f) => AppError::Invalid(f),
            StoreError::Conflict(m) => AppError::Conflict(m),
            other => {
                tracing::error!(error = %other, "store error");
                AppError::Internal
            }
        }
    }
}

impl From<ketcare_app::Error> for AppError {
    fn from(e: ketcare_app::Error) -> Self {
        use ketcare_app::Error as E;
        match e {
            E::Forbidden(m) => AppError::Forbidden(m),
            E::NotFound(w) => AppError::NotFound(w),
            E::Conflict(m) => AppError::Conflict(m),
            E::PreconditionFailed(m) => AppError::PreconditionFailed(m),
            E::Invalid(f) => AppError::Invalid(f),
            E::Dose(d) => AppError::Invalid(FieldErrors::single(&d.field(), d.to_string())),
            // Overload is answered like pacing: 429, send again later.
            E::Busy(m) => AppError::TooManyRequests(m),
            E::Internal => AppError::Internal,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let busy = matches!(self, AppError::TooManyRequests(_));
        let mut r = (self.status(), Json(self.body())).into_response();
        // Overload (a full vitals queue): send again in a second. Throttles that know their own
        // wait replace this header.
        if busy {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        r
    }
}

/// The same error, shown as a page.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        // A refused field is named with its message, never a bare "not valid".
        let message = match &self.0 {
            AppError::Invalid(f) if !f.0.is_empty() => {
                f.0.iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
            other => other.to_string(),
        };
        let page = crate::pages::ErrorPage {
            nav: None,
            status: status.as_u16(),
            message,
        };
        (status, crate::pages::render_html(&page)).into_response()
    }
}
