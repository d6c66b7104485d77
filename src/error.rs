//! The one error type of the crate. Each variant has an HTTP status and a stable `code`;
//! internal errors are logged with their detail and the chain of errors under it, and shown to
//! clients as a bare "internal error".

use std::sync::Arc;

use warp::http::StatusCode;

/// The error under an internal one, kept whole for the log (`Error::chain`).
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// 403: authenticated, but this request is refused (a missing CSRF token, say).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 503: a feature that needs configuration (billing, mail) is off.
    #[error("{0}")]
    Unavailable(String),
    /// 503: a cap on what the store holds is reached (`fleet_full`); nothing was written.
    #[error("{message}")]
    AtCapacity { code: &'static str, message: String },
    /// 503: the data disk is (nearly) full; writes are refused, reads go on.
    #[error("{0}")]
    StorageFull(String),
    /// 429: too many attempts; the client may try again after this many seconds.
    #[error("too many attempts; try again in {0} s")]
    TooManyRequests(u64),
    /// 429: a quota of the account is used up (`invitation_quota`); the message says when
    /// the next one is allowed, `retry_after_secs` is sent as `Retry-After`.
    #[error("{message}")]
    QuotaExceeded {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// 410: what was asked for existed but is no more (an expired or revoked invitation).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// 500: what was being done (`context`), and the error that made it fail, if any. Shown
    /// (to the log, to the operator at the CLI, never to a client) with every cause under it.
    #[error("internal error: {context}{}", causes(.source))]
    Internal {
        context: String,
        #[source]
        source: Option<Source>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `: cause: its cause...` for an internal error's source, or nothing.
fn causes(source: &Option<Source>) -> String {
    let mut text = String::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = source
        .as_deref()
        .map(|s| s as &(dyn std::error::Error + 'static));
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

impl Error {
    /// 422: the request was well formed but a field is not acceptable.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }

    /// 400: the request could not be read at all.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Error::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn gone(code: &'static str, message: impl Into<String>) -> Self {
        Error::Gone {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Error::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// 500 with a description only (no error under it, or one that says all in its text).
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal {
            context: detail.to_string(),
            source: None,
        }
    }

    /// 500: `context` failed because of `source`, which is kept (not flattened into text).
    pub fn caused_by<E>(context: impl Into<String>, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::Internal {
            context: context.into(),
            source: Some(Arc::new(source)),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::TooManyRequests(_) | Error::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::Gone { .. } => StatusCode::GONE,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Unavailable(_) | Error::StorageFull(_) | Error::AtCapacity { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest { code, .. } | Error::Invalid { code, .. } => code,
            Error::Conflict { code, .. } | Error::Forbidden { code, .. } => code,
            Error::AtCapacity { code, .. } => code,
            Error::QuotaExceeded { code, .. } | Error::Gone { code, .. } => code,
            Error::TooManyRequests(_) => "too_many_requests",
            Error::Unauthorized => "unauthorized",
            Error::NotFound(_) => "not_found",
            Error::Unavailable(_) => "unavailable",
            Error::StorageFull(_) => "storage_full",
            Error::Internal { .. } => "internal",
        }
    }

    /// The sentence shown to the client: never the detail of an internal error.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal { .. } => "internal error".to_string(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_what_caused_it() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no access");
        let error = Error::caused_by("open the store", io);
        assert_eq!(
            error.to_string(),
            "internal error: open the store: no access"
        );
        assert_eq!(error.public_message(), "internal error");
        assert!(std::error::Error::source(&error).is_some());
    }
}
