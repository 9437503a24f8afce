//! OpenAI-style error responses: `{"error": {"message", "type", "param", "code"}}` with the
//! status code OpenAI uses for the same failure.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kaizen_core::openai::{ErrorBody, ErrorDetail};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: param.map(String::from),
            code: None,
        }
    }
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
    pub fn not_found(message: impl Into<String>, code: &'static str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            message: message.into(),
            param: None,
            code: Some(code),
        }
    }
    pub fn busy(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            message: message.into(),
            param: None,
            code: Some("overloaded"),
        }
    }
    /// The upstream server failed us (unreachable, bad answer): 502, or 504 on a timeout.
    pub fn upstream(status: StatusCode, message: impl Into<String>, code: &'static str) -> Self {
        ApiError { status, kind: "upstream_error", message: message.into(), param: None, code: Some(code) }
    }
    /// A request the server refuses by its method or size (405, 413): OpenAI's error shape,
    /// where axum would answer with plain text.
    pub fn refused(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, kind: "invalid_request_error", message: message.into(), param: None, code: None }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            message: message.into(),
            param: None,
            code: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.message,
                kind: self.kind.into(),
                param: self.param,
                code: self.code.map(String::from),
            },
        };
        (self.status, Json(body)).into_response()
    }
}
