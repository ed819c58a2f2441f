//! The one domain error type. HTTP status codes are assigned in exactly one
//! place, `http::error`; codes here are the stable machine-readable part.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The object does not exist, or the caller may not know it exists.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A field of the request names an object that does not exist (or
    /// that the caller may not see); `field` names it.
    #[error("{field}: {message}")]
    NoSuch { field: String, message: String },
    /// A field of the request is invalid; `field` names it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The request conflicts with stored state; `code` says how.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// `If-Match` named another revision than the stored one.
    #[error("revision {current} is current; the request expected another")]
    RevisionMismatch { current: i64 },
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("storage failure")]
    Store(#[from] StoreError),
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.to_string(),
        }
    }

    pub fn no_such(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::NoSuch {
            field: field.into(),
            message: message.to_string(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }
}
