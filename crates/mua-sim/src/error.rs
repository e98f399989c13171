//! ARM's error answer, `{"error": {"code", "message"}}` with an HTTP status and headers: what every
//! part of the simulator that speaks ARM (its resources, throttling, injected faults, the admin API)
//! refuses a request with.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An ARM error: `{"error": {"code", "message"}}` with an HTTP status.
#[derive(Debug)]
pub struct ArmError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub headers: Vec<(&'static str, String)>,
}

impl ArmError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn not_found(kind: &str, name: &str, group: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource '{kind}/{name}' under resource group '{group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    }

    /// ARM's refusal when no role assignment allows `action` on `scope` to `principal`.
    pub fn authorization_failed(principal: &str, action: &str, scope: &str) -> Self {
        Self::forbidden(format!(
            "The client '{principal}' with object id '{principal}' does not have authorization to perform action \
             '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh \
             your credentials."
        ))
    }

    /// `AuthorizationFailed` with a message of the caller's own.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AuthorizationFailed", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }

    /// The refusal for a critical operation whose linked authorization check on the guard failed. Azure
    /// Backup's exact code was not seen in the specs; it is defined here, in one place.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn linked_authorization_failed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "LinkedAuthorizationFailed", message)
    }

    pub fn subscription_not_found(subscription: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            format!("The subscription '{subscription}' could not be found."),
        )
    }

    pub fn resource_group_not_found(group: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            format!("Resource group '{group}' could not be found."),
        )
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        add_headers(&mut response, &self.headers);
        response
    }
}

pub(crate) fn add_headers(response: &mut Response, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().append(*name, value);
        }
    }
}
