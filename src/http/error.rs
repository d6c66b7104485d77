//! Every rejection becomes the JSON error shape of docs/API.md:
//! `{"error":{"code":"snake_case_code","message":"human sentence"}}`.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reject::{LengthRequired, MethodNotAllowed, PayloadTooLarge, UnsupportedMediaType};
use warp::Rejection;

use crate::error::Error;

impl warp::reject::Reject for Error {}

pub fn reject(error: Error) -> Rejection {
    warp::reject::custom(error)
}

/// The error shape; a route that says more (the known cities, the primary) flattens this into
/// its own body.
#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize)]
pub struct ErrorDetail<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

impl<'a> ErrorBody<'a> {
    pub fn new(code: &'a str, message: &'a str) -> Self {
        ErrorBody {
            error: ErrorDetail { code, message },
        }
    }
}

pub fn error_response(status: StatusCode, code: &str, message: &str) -> warp::reply::Response {
    super::json(status, &ErrorBody::new(code, message))
}

pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let response = if let Some(error) = rejection.find::<Error>() {
        if let Error::Internal { .. } = error {
            tracing::error!(%error, "internal error");
        }
        let mut response = error_response(error.status(), error.code(), &error.public_message());
        let retry_after = match error {
            Error::TooManyRequests(secs) => Some(*secs),
            Error::QuotaExceeded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(warp::http::header::RETRY_AFTER, secs.into());
        }
        response
    } else if rejection.is_not_found() {
        error_response(StatusCode::NOT_FOUND, "not_found", "no such resource")
    } else if rejection.find::<PayloadTooLarge>().is_some() {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body is too large",
        )
    } else if rejection.find::<LengthRequired>().is_some() {
        error_response(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a Content-Length header is required",
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        // Before 405: `GET /x?limit=-1` matched this route, whose query was wrong; that
        // another route takes other methods on the path is beside the point.
        error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            &e.to_string(),
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        error_response(StatusCode::BAD_REQUEST, "invalid_header", &e.to_string())
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed here",
        )
    } else if rejection.find::<UnsupportedMediaType>().is_some() {
        error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "unsupported content type",
        )
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    };
    Ok(response)
}
