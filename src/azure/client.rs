//! One way to call ARM: bearer tokens from the configured credentials (plus auxiliary tokens for
//! resources in other tenants), a correlation ID per logical call, retries with jittered exponential
//! backoff where ARM says retrying is safe (429 after `Retry-After`, 5xx and dropped connections for
//! idempotent methods), and polling of long-running operations. Every attempt first takes a token from
//! the identity's client-side buckets ([`Throttle`]), and is counted in [`ArmMetrics`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use backon::BackoffBuilder;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::credentials::AzureCloud;
use super::error::AzureError;
use super::metrics::{self, ArmMetrics};
use super::throttle::{Throttle, ThrottleKey, ThrottlePolicy};

/// When and how often to try again.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured before giving up on a throttled call.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    fn delays(&self) -> impl Iterator<Item = Duration> {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .with_jitter()
            .build()
    }
}

/// The most pages [`ArmClient::list`] follows: ARM's pages hold 100 or more items, and no list the
/// operator reads comes near 100,000.
const MAX_LIST_PAGES: usize = 1000;

/// One ARM call.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    /// The ARM path, e.g. `/subscriptions/{s}/resourceGroups/{rg}/providers/...`.
    pub path: String,
    pub api_version: String,
    pub body: Option<Value>,
    pub if_match: Option<String>,
    /// The tenant whose token authenticates the call, when it is not the identity's home tenant (a
    /// resource in another tenant, called directly).
    pub tenant: Option<String>,
    /// Tenants whose tokens go in `x-ms-authorization-auxiliary` (a guard in another tenant).
    pub auxiliary_tenants: Vec<String>,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>, api_version: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            api_version: api_version.into(),
            body: None,
            if_match: None,
            tenant: None,
            auxiliary_tenants: Vec::new(),
        }
    }

    /// Authenticates the call with a token from `tenant` (none: the identity's home tenant).
    pub fn in_tenant(mut self, tenant: Option<&str>) -> Self {
        self.tenant = tenant.map(str::to_string);
        self
    }

    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn if_match(mut self, etag: Option<String>) -> Self {
        self.if_match = etag;
        self
    }

    pub fn auxiliary(mut self, tenant: Option<&str>) -> Self {
        self.auxiliary_tenants.extend(tenant.map(str::to_string));
        self
    }

    fn describe(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// PUT, PATCH, DELETE and GET can be repeated; a POST action is only repeated when ARM did not take it
    /// (429).
    fn idempotent(&self) -> bool {
        self.method != Method::POST
    }
}

/// A successful ARM answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An ARM client for one identity.
#[derive(Clone)]
pub struct ArmClient {
    http: reqwest::Client,
    arm_url: String,
    /// `<the cloud's ARM audience>/.default`.
    scope: String,
    /// The identity's home tenant and its credential.
    tenant: String,
    credential: Arc<dyn TokenCredential>,
    /// The same identity in other tenants, by lowercase tenant ID.
    auxiliary: BTreeMap<String, Arc<dyn TokenCredential>>,
    retry: RetryPolicy,
    /// The identity's buckets, shared by clones: ARM counts per principal, not per client value.
    throttle: Arc<Throttle>,
    metrics: ArmMetrics,
}

impl ArmClient {
    pub fn new(cloud: &AzureCloud, http: reqwest::Client, tenant: &str, credential: Arc<dyn TokenCredential>) -> Self {
        Self {
            http,
            arm_url: cloud.arm_url.trim_end_matches('/').to_string(),
            scope: cloud.arm_scope(),
            tenant: tenant.to_ascii_lowercase(),
            credential,
            auxiliary: BTreeMap::new(),
            retry: RetryPolicy::default(),
            throttle: Arc::new(Throttle::new(ThrottlePolicy::default())),
            // Counted but never scraped unless the caller passes its own with `with_metrics`.
            metrics: ArmMetrics::new(),
        }
    }

    /// The same identity in another tenant, for auxiliary tokens.
    pub fn with_tenant(mut self, tenant: &str, credential: Arc<dyn TokenCredential>) -> Self {
        self.auxiliary.insert(tenant.to_ascii_lowercase(), credential);
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// New buckets with `policy` (ARM's published figures by default).
    pub fn with_throttle(mut self, policy: ThrottlePolicy) -> Self {
        self.throttle = Arc::new(Throttle::new(policy));
        self
    }

    /// Counts this client's calls in `metrics` (register them once with [`ArmMetrics::register`]).
    pub fn with_metrics(mut self, metrics: ArmMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The identity's client-side buckets.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    async fn token(
        &self,
        operation: &str,
        tenant: &str,
        credential: &Arc<dyn TokenCredential>,
    ) -> Result<String, AzureError> {
        let token = credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map_err(|err| AzureError::Credential {
                operation: operation.to_string(),
                tenant: tenant.to_string(),
                message: err.to_string(),
            })?;
        Ok(token.token.secret().to_string())
    }

    /// The identity's credential in `tenant` (none: the home tenant).
    fn credential_in(
        &self,
        operation: &str,
        tenant: Option<&str>,
    ) -> Result<(String, &Arc<dyn TokenCredential>), AzureError> {
        let tenant = tenant
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| self.tenant.clone());
        if tenant == self.tenant {
            return Ok((tenant, &self.credential));
        }
        match self.auxiliary.get(&tenant) {
            Some(credential) => Ok((tenant, credential)),
            None => Err(AzureError::TenantNotConfigured {
                operation: operation.to_string(),
                tenant,
            }),
        }
    }

    /// Whether this identity can sign in to `tenant`.
    pub fn has_tenant(&self, tenant: &str) -> bool {
        let tenant = tenant.to_ascii_lowercase();
        tenant == self.tenant || self.auxiliary.contains_key(&tenant)
    }

    /// The identity's object ID in its home tenant: see [`ArmClient::principal_id_in`].
    pub async fn principal_id(&self) -> Result<String, AzureError> {
        self.principal_id_in(None).await
    }

    /// The identity's object ID in `tenant` (none: the home tenant), the `oid` claim of its own ARM token
    /// there: a multi-tenant application has a different service principal, so a different object ID, in
    /// each tenant. It is the principal the security side elevates on a guard in that tenant when the
    /// operator performs an operation itself. The token is the one the identity was just issued, so
    /// reading its claims without checking the signature is sound.
    pub async fn principal_id_in(&self, tenant: Option<&str>) -> Result<String, AzureError> {
        #[derive(serde::Deserialize)]
        struct Claims {
            oid: String,
        }
        let (tenant, credential) = self.credential_in("identify", tenant)?;
        let token = self.token("identify", &tenant, credential).await?;
        jsonwebtoken::dangerous::insecure_decode_claims::<Claims>(&token)
            .map(|claims| claims.oid.to_ascii_lowercase())
            .map_err(|err| AzureError::Credential {
                operation: "identify".into(),
                tenant,
                message: format!("the identity's token has no object ID (oid claim): {err}"),
            })
    }

    /// The identity's home tenant.
    pub fn home_tenant(&self) -> &str {
        &self.tenant
    }

    /// Auxiliary tokens for the call's other tenants (the tenant that authenticates the call needs none).
    async fn auxiliary_header(&self, operation: &str, call: &Call) -> Result<Option<String>, AzureError> {
        let primary = call.tenant.as_deref().unwrap_or(&self.tenant).to_ascii_lowercase();
        let mut tokens = Vec::new();
        for tenant in &call.auxiliary_tenants {
            if tenant.eq_ignore_ascii_case(&primary) {
                continue;
            }
            let (tenant, credential) = self.credential_in(operation, Some(tenant))?;
            tokens.push(format!("Bearer {}", self.token(operation, &tenant, credential).await?));
        }
        Ok((!tokens.is_empty()).then(|| tokens.join(", ")))
    }

    /// Sends a list `call` and follows ARM's `nextLink`s, returning every page's `value` items. A
    /// `nextLink` elsewhere than this client's ARM endpoint is refused, so a token never leaves for
    /// another host.
    pub async fn list(&self, call: &Call) -> Result<Vec<Value>, AzureError> {
        let mut items = Vec::new();
        let mut page = call.clone();
        for _ in 0..MAX_LIST_PAGES {
            let reply = self.send(&page).await?;
            let protocol = |message: String| AzureError::Protocol {
                operation: call.describe(),
                message,
            };
            let mut body = reply.body;
            match body.get_mut("value").map(Value::take) {
                Some(Value::Array(values)) => items.extend(values),
                None | Some(Value::Null) => {}
                Some(_) => return Err(protocol("`value` is not a list".into())),
            }
            let Some(next) = body.get("nextLink").and_then(Value::as_str).filter(|l| !l.is_empty()) else {
                return Ok(items);
            };
            let relative = next
                .strip_prefix(&self.arm_url)
                .filter(|rest| rest.starts_with('/'))
                .ok_or_else(|| protocol(format!("a nextLink outside {}: {next}", self.arm_url)))?;
            let (path, api_version) = split_api_version(relative);
            page = Call {
                method: Method::GET,
                path,
                api_version: api_version.unwrap_or_else(|| call.api_version.clone()),
                body: None,
                ..call.clone()
            };
        }
        Err(AzureError::Protocol {
            operation: call.describe(),
            message: format!("more than {MAX_LIST_PAGES} pages"),
        })
    }

    /// Sends `call`, retrying where that is safe, and returns the answer or the last error.
    pub async fn send(&self, call: &Call) -> Result<Reply, AzureError> {
        let operation = call.describe();
        let correlation = uuid::Uuid::new_v4().to_string();
        let separator = if call.path.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}{}{separator}api-version={}",
            self.arm_url, call.path, call.api_version
        );
        let (tenant, credential) = self.credential_in(&operation, call.tenant.as_deref())?;
        let key = ThrottleKey::for_call(&call.method, &call.path, &tenant);
        let route = metrics::route(&call.path);
        let mut delays = self.retry.delays();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let token = self.token(&operation, &tenant, credential).await?;
            let mut request = self
                .http
                .request(call.method.clone(), &url)
                .bearer_auth(token)
                .header("x-ms-correlation-request-id", &correlation)
                .header("user-agent", concat!("mua-operator/", env!("CARGO_PKG_VERSION")));
            if let Some(auxiliary) = self.auxiliary_header(&operation, call).await? {
                request = request.header("x-ms-authorization-auxiliary", auxiliary);
            }
            if let Some(etag) = &call.if_match {
                request = request.header("if-match", etag);
            }
            if let Some(body) = &call.body {
                request = request.json(body);
            }
            // Taken last, just before sending, so ARM sees the request as soon after as possible.
            let acquired = self.throttle.acquire(&key).await;
            self.metrics.throttle_wait(key.kind, acquired.waited);
            let sent = tokio::time::Instant::now();
            let (error, wait) = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    self.throttle.observe(&key, &acquired, status, &headers);
                    self.metrics
                        .request(&call.method, &route, &status.to_string(), sent.elapsed());
                    let text = response.text().await.map_err(|source| AzureError::Transport {
                        operation: operation.clone(),
                        source,
                    })?;
                    if (200..300).contains(&status) {
                        let body = if text.is_empty() {
                            Value::Null
                        } else {
                            decode(&operation, &text)?
                        };
                        return Ok(Reply { status, headers, body });
                    }
                    let error = arm_error(&operation, status, &headers, &text);
                    let retry_after = error.retry_after();
                    let retryable =
                        status == 429 || (call.idempotent() && matches!(status, 408 | 500 | 502 | 503 | 504));
                    if !retryable {
                        return Err(error);
                    }
                    (error, retry_after)
                }
                Err(source) => {
                    self.metrics
                        .request(&call.method, &route, "transport_error", sent.elapsed());
                    let error = AzureError::Transport {
                        operation: operation.clone(),
                        source,
                    };
                    if !call.idempotent() {
                        return Err(error);
                    }
                    (error, None)
                }
            };
            let wait = match (delays.next(), wait) {
                (Some(delay), None) => delay,
                (Some(delay), Some(wait)) if wait <= self.retry.max_retry_after => wait.max(delay),
                _ => {
                    // One line per failed call; the retries before it are at DEBUG.
                    let status = error.status().map_or("transport_error".to_string(), |s| s.to_string());
                    tracing::warn!(%operation, %correlation, attempts, %status, error = %error, "an Azure call failed after retries");
                    return Err(error);
                }
            };
            self.metrics.retry(&call.method, &route, error.metric_label());
            tracing::debug!(%operation, %correlation, attempts, error = %error, wait_ms = wait.as_millis() as u64, "retrying an Azure call");
            tokio::time::sleep(wait).await;
        }
    }

    /// Follows a long-running operation's `Azure-AsyncOperation` (or `Location`) until it ends, polling as
    /// often as its `Retry-After` asks (each poll retried like any call).
    pub async fn wait_for_completion(
        &self,
        reply: &Reply,
        operation: &str,
        deadline: Duration,
    ) -> Result<(), AzureError> {
        let Some(url) = reply
            .header("azure-asyncoperation")
            .or_else(|| reply.header("location"))
        else {
            return Ok(());
        };
        let relative = url.strip_prefix(&self.arm_url).unwrap_or(url);
        let (path, api_version) = relative.split_once("?api-version=").unwrap_or((relative, ""));
        let poll = Call::new(Method::GET, path, api_version.split('&').next().unwrap_or_default());
        let started = tokio::time::Instant::now();
        loop {
            let status = self.send(&poll).await?;
            match status.body["status"].as_str() {
                // A `Location` poll answers 200 with the resource itself once done.
                None if status.status == 200 => return Ok(()),
                Some("Succeeded") => return Ok(()),
                Some(state @ ("Failed" | "Canceled")) => {
                    return Err(AzureError::OperationFailed {
                        operation: operation.to_string(),
                        status: state.to_string(),
                        message: status.body["error"]["message"].as_str().unwrap_or_default().to_string(),
                    });
                }
                _ => {}
            }
            if started.elapsed() > deadline {
                return Err(AzureError::Protocol {
                    operation: operation.to_string(),
                    message: format!("the long-running operation did not finish within {deadline:?}"),
                });
            }
            let wait = retry_after(&status.headers)
                .unwrap_or(Duration::from_secs(1))
                .min(self.retry.max_delay);
            tokio::time::sleep(wait).await;
        }
    }
}

/// A `path?query` without its `api-version` parameter, and that parameter's value.
fn split_api_version(relative: &str) -> (String, Option<String>) {
    let Some((path, query)) = relative.split_once('?') else {
        return (relative.to_string(), None);
    };
    let mut api_version = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("api-version=") {
            Some(version) => {
                api_version = Some(version.to_string());
                false
            }
            None => true,
        })
        .collect();
    let path = if rest.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", rest.join("&"))
    };
    (path, api_version)
}

fn decode(operation: &str, text: &str) -> Result<Value, AzureError> {
    serde_json::from_str(text).map_err(|err| AzureError::Protocol {
        operation: operation.to_string(),
        message: format!("the body is not JSON: {err}"),
    })
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// ARM's error envelope as an [`AzureError`]; bodies that are not one keep their text as the message.
fn arm_error(operation: &str, status: u16, headers: &HeaderMap, text: &str) -> AzureError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let error = &body["error"];
    AzureError::Arm {
        operation: operation.to_string(),
        status,
        code: error["code"].as_str().unwrap_or("Unknown").to_string(),
        message: error["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| text.chars().take(500).collect()),
        request_id: headers
            .get("x-ms-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        retry_after: retry_after(headers),
    }
}
