//! Errors as the API answers them: a status and `{"error": "<one line>"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use freshen_app::AppError;
use freshen_inventory::InventoryError;

/// An error response.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Extra headers (`WWW-Authenticate`, `Allow`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: one_line(&message.into()),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &'static str) -> ApiError {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    pub fn method_not_allowed(
        method: &axum::http::Method,
        path: &str,
        allow: &'static str,
    ) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} is not allowed on {path} (allowed: {allow})"),
        )
        .with_header(header::ALLOW, allow)
    }
}

/// Newlines and runs of whitespace become one space: the reason is one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl From<freshen_store::StoreError> for ApiError {
    fn from(e: freshen_store::StoreError) -> ApiError {
        InventoryError::from(e).into()
    }
}

impl From<InventoryError> for ApiError {
    fn from(e: InventoryError) -> ApiError {
        match &e {
            InventoryError::UnknownImage(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            InventoryError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            InventoryError::Invalid(_) | InventoryError::Reference(_) => {
                ApiError::bad_request(e.to_string())
            }
            // An image's content could not be read (scans only; the API does not scan).
            InventoryError::Layer(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            InventoryError::Registry(_) => {
                // Registry and Harbor errors carry URLs without credentials.
                tracing::warn!(error = %e, "registry request failed");
                ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
            }
            InventoryError::Store(_) => {
                // The detail (redacted by the store) goes to the log only.
                tracing::error!(error = %e, "inventory store failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error: the inventory store failed (the server log has the detail)",
                )
            }
        }
    }
}

impl From<freshen_judge::JudgeError> for ApiError {
    fn from(e: freshen_judge::JudgeError) -> ApiError {
        use freshen_judge::JudgeError;
        // The same answers as the inventory's errors of the same kind.
        match e {
            JudgeError::Inventory(e) => e.into(),
            JudgeError::Store(e) => e.into(),
            JudgeError::Invalid(_) | JudgeError::Reference(_) => {
                ApiError::bad_request(e.to_string())
            }
            JudgeError::Harbor(_) => {
                // Harbor errors carry URLs without credentials.
                tracing::warn!(error = %e, "Harbor request failed");
                ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
            }
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        // A layer's error answers as it would from that layer.
        match e {
            AppError::Inventory(e) => e.into(),
            AppError::Judge(e) => e.into(),
            AppError::Store(e) => e.into(),
            AppError::Reference(_) | AppError::Refused(_) => ApiError::bad_request(e.to_string()),
            AppError::Deploy(freshen_app::DeployError::NoClusters) => {
                ApiError::bad_request(e.to_string())
            }
            AppError::Deploy(freshen_app::DeployError::Config { .. }) => {
                // This server's own kubeconfig is wrong: not the cluster's fault.
                tracing::error!(error = %e, "a cluster's kubeconfig is unusable");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            AppError::Deploy(_) => {
                // Cluster errors name the cluster and what it said, no credentials.
                tracing::warn!(error = %e, "cluster request failed");
                ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
            }
            AppError::Registry(_) | AppError::Harbor(_) => {
                // Registry and Harbor errors carry URLs without credentials.
                tracing::warn!(error = %e, "registry request failed");
                ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
            }
            e => {
                tracing::error!(error = %e, "the application failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error (the server log has the detail)",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        let mut resp = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let cases = [
            (InventoryError::UnknownImage("x".into()), 404),
            (InventoryError::Conflict("x".into()), 409),
            (InventoryError::Invalid("x".into()), 400),
            (InventoryError::Store(freshen_store_error()), 500),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::from(e).status.as_u16(), status);
        }
    }

    fn freshen_store_error() -> freshen_store::StoreError {
        freshen_store::StoreError::Invalid("secret detail".into())
    }

    #[test]
    fn store_errors_hide_their_detail() {
        let e = ApiError::from(InventoryError::Store(freshen_store_error()));
        assert!(!e.message.contains("secret detail"), "{}", e.message);
    }

    #[test]
    fn messages_are_one_line() {
        let e = ApiError::bad_request("a\nb\r\n  c");
        assert_eq!(e.message, "a b c");
    }
}
