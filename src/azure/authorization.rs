//! Microsoft.Authorization: role assignments and PIM role assignment schedule requests, the two ways the
//! security side grants time-boxed Contributor on a guard and takes it back.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::{ArmClient, Call};
use super::decode;
use super::error::AzureError;

pub const ROLE_ASSIGNMENTS_API: &str = "2022-04-01";
pub const PIM_API: &str = "2020-10-01";
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
/// The built-in Backup MUA Operator role: passes a guard's check for critical operations, nothing more.
pub const BACKUP_MUA_OPERATOR: &str = "f54b6d04-23c6-443e-b462-9c16ab7b4a52";

/// A role definition's full ID as seen from `scope` (ARM wants the subscription's form under one).
pub fn role_definition_id(scope: &str, role: &str) -> String {
    let mut parts = scope.trim_start_matches('/').split('/');
    match (parts.next(), parts.next()) {
        (Some(s), Some(subscription)) if s.eq_ignore_ascii_case("subscriptions") => {
            format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}")
        }
        _ => format!("/providers/Microsoft.Authorization/roleDefinitions/{role}"),
    }
}

/// A role assignment as ARM reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleAssignment {
    pub id: String,
    pub scope: String,
    /// The role definition's GUID.
    pub role: String,
    pub principal_id: String,
    /// When Azure created it.
    pub created_on: Option<jiff::Timestamp>,
}

// The wire shapes, private: the fields the operator relies on are required, so a body without them
// is a protocol error rather than an empty string.
#[derive(Deserialize)]
struct RoleAssignmentWire {
    id: String,
    properties: RoleAssignmentPropertiesWire,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleAssignmentPropertiesWire {
    scope: String,
    role_definition_id: String,
    principal_id: String,
    #[serde(default)]
    created_on: Option<String>,
}

impl From<RoleAssignmentWire> for RoleAssignment {
    fn from(wire: RoleAssignmentWire) -> RoleAssignment {
        let p = wire.properties;
        RoleAssignment {
            id: wire.id,
            scope: p.scope,
            role: p.role_definition_id.rsplit('/').next().unwrap_or_default().to_string(),
            principal_id: p.principal_id,
            created_on: p.created_on.and_then(|t| t.parse().ok()),
        }
    }
}

/// Assigns `role` to `principal` at `scope` (in the caller's home tenant). An identical assignment that
/// already exists is returned.
pub async fn assign(
    client: &ArmClient,
    scope: &str,
    role: &str,
    principal: &str,
) -> Result<RoleAssignment, AzureError> {
    assign_in(client, None, scope, role, principal).await
}

/// [`assign`] at a scope in `tenant` (none: the home tenant).
pub async fn assign_in(
    client: &ArmClient,
    tenant: Option<&str>,
    scope: &str,
    role: &str,
    principal: &str,
) -> Result<RoleAssignment, AzureError> {
    let path = format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignments/{}",
        uuid::Uuid::new_v4()
    );
    let body = json!({"properties": {"roleDefinitionId": role_definition_id(scope, role), "principalId": principal}});
    match client
        .send(
            &Call::new(Method::PUT, path, ROLE_ASSIGNMENTS_API)
                .in_tenant(tenant)
                .body(body),
        )
        .await
    {
        Ok(reply) => decode::<RoleAssignmentWire>("a role assignment", reply.body).map(RoleAssignment::from),
        Err(err) if err.code() == Some("RoleAssignmentExists") => {
            let existing = list_for_principal_in(client, tenant, scope, principal).await?;
            existing
                .into_iter()
                .find(|a| a.scope.eq_ignore_ascii_case(scope) && a.role.eq_ignore_ascii_case(role))
                .ok_or(err)
        }
        Err(err) => Err(err),
    }
}

/// Removes a role assignment by ID; removing one that is gone succeeds.
pub async fn remove(client: &ArmClient, id: &str) -> Result<(), AzureError> {
    client
        .send(&Call::new(Method::DELETE, id, ROLE_ASSIGNMENTS_API))
        .await
        .map(|_| ())
}

/// The assignments of `principal` that apply at `scope` (in the caller's home tenant).
pub async fn list_for_principal(
    client: &ArmClient,
    scope: &str,
    principal: &str,
) -> Result<Vec<RoleAssignment>, AzureError> {
    list_for_principal_in(client, None, scope, principal).await
}

/// The assignments of `principal` that apply at `scope`, a scope in `tenant` (none: the home tenant).
pub async fn list_for_principal_in(
    client: &ArmClient,
    tenant: Option<&str>,
    scope: &str,
    principal: &str,
) -> Result<Vec<RoleAssignment>, AzureError> {
    let path =
        format!("{scope}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId%20eq%20'{principal}'");
    let items = client
        .list(&Call::new(Method::GET, path, ROLE_ASSIGNMENTS_API).in_tenant(tenant))
        .await?;
    items
        .into_iter()
        .map(|item| decode::<RoleAssignmentWire>("a role assignment", item).map(RoleAssignment::from))
        .collect()
}

/// PIM request types the operator uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    SelfActivate,
    SelfDeactivate,
    AdminAssign,
    AdminRemove,
}

impl RequestType {
    fn as_str(self) -> &'static str {
        match self {
            RequestType::SelfActivate => "SelfActivate",
            RequestType::SelfDeactivate => "SelfDeactivate",
            RequestType::AdminAssign => "AdminAssign",
            RequestType::AdminRemove => "AdminRemove",
        }
    }
}

/// What a PIM request asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleRequestSpec {
    /// The request's name (a GUID). Give a stable one to make the request idempotent: sending it again
    /// returns the request already made instead of asking twice. None: a fresh one.
    pub name: Option<String>,
    pub scope: String,
    /// The scope's tenant, when it is not the caller's home tenant.
    pub tenant: Option<String>,
    pub role: String,
    pub principal_id: String,
    pub request_type: RequestType,
    /// How long the assignment lasts (activations and assignments; ignored for removals).
    pub duration: std::time::Duration,
    /// An exact end instead of `duration` (an admin's assignment: it starts now and Azure ends it at
    /// this moment, so the grant never outlasts what was approved by the time the request took).
    pub ends_at: Option<jiff::Timestamp>,
    pub justification: String,
    /// `(system, number)`.
    pub ticket: Option<(String, String)>,
}

/// A PIM request's status, as PIM names it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub enum ScheduleStatus {
    Accepted,
    PendingEvaluation,
    Granted,
    Denied,
    PendingProvisioning,
    Provisioned,
    PendingRevocation,
    Revoked,
    Canceled,
    Failed,
    PendingApprovalProvisioning,
    PendingApproval,
    FailedAsResourceIsLocked,
    PendingAdminDecision,
    AdminApproved,
    AdminDenied,
    TimedOut,
    ProvisioningStarted,
    Invalid,
    PendingScheduleCreation,
    ScheduleCreated,
    PendingExternalProvisioning,
    /// A status this operator does not know (kept, not guessed at).
    #[serde(untagged)]
    Other(String),
}

impl ScheduleStatus {
    /// The assignment it asks for is in force (or about to be, with nothing left to decide).
    pub fn is_in_force(&self) -> bool {
        matches!(
            self,
            Self::Provisioned | Self::Granted | Self::AdminApproved | Self::ScheduleCreated
        )
    }

    /// PIM is done with it without an assignment in force.
    pub fn is_over(&self) -> bool {
        matches!(
            self,
            Self::Denied
                | Self::Revoked
                | Self::Canceled
                | Self::Failed
                | Self::FailedAsResourceIsLocked
                | Self::AdminDenied
                | Self::TimedOut
                | Self::Invalid
        )
    }

    /// Neither: still waiting for approvers or being provisioned (and any status this build does not
    /// know, which is never taken for over).
    pub fn is_waiting(&self) -> bool {
        !self.is_in_force() && !self.is_over()
    }
}

/// A PIM request as ARM reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleRequest {
    pub id: String,
    pub status: ScheduleStatus,
    pub approval_id: Option<String>,
    /// The end Azure holds for the assignment, where the request names one (`AfterDateTime`).
    pub ends_at: Option<jiff::Timestamp>,
    /// Whom, where and what it grants, and why (as the requester wrote it).
    pub principal_id: Option<String>,
    pub scope: Option<String>,
    pub role_definition_id: Option<String>,
    pub justification: Option<String>,
}

#[derive(Deserialize)]
struct ScheduleRequestWire {
    id: String,
    properties: ScheduleRequestPropertiesWire,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleRequestPropertiesWire {
    status: ScheduleStatus,
    #[serde(default)]
    approval_id: Option<String>,
    #[serde(default)]
    schedule_info: Option<ScheduleInfoWire>,
    #[serde(default)]
    principal_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    role_definition_id: Option<String>,
    #[serde(default)]
    justification: Option<String>,
}

#[derive(Deserialize)]
struct ScheduleInfoWire {
    #[serde(default)]
    expiration: Option<ExpirationWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpirationWire {
    #[serde(default)]
    end_date_time: Option<jiff::Timestamp>,
}

impl From<ScheduleRequestWire> for ScheduleRequest {
    fn from(wire: ScheduleRequestWire) -> ScheduleRequest {
        let properties = wire.properties;
        ScheduleRequest {
            id: wire.id,
            status: properties.status,
            approval_id: properties.approval_id,
            ends_at: properties
                .schedule_info
                .and_then(|info| info.expiration)
                .and_then(|expiration| expiration.end_date_time),
            principal_id: properties.principal_id,
            scope: properties.scope,
            role_definition_id: properties.role_definition_id,
            justification: properties.justification,
        }
    }
}

/// An ISO 8601 duration in whole hours, minutes and seconds, as PIM expects (`PT1H30M`).
pub fn iso_duration(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut text = String::from("PT");
    for (value, unit) in [(h, 'H'), (m, 'M'), (s, 'S')] {
        if value > 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    if text == "PT" { "PT0S".into() } else { text }
}

/// Submits a PIM role assignment schedule request.
pub async fn request_schedule(client: &ArmClient, spec: &ScheduleRequestSpec) -> Result<ScheduleRequest, AzureError> {
    let name = spec.name.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let path = format!(
        "{}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}",
        spec.scope
    );
    let mut properties = json!({
        "principalId": spec.principal_id,
        "roleDefinitionId": role_definition_id(&spec.scope, &spec.role),
        "requestType": spec.request_type.as_str(),
        "justification": spec.justification,
    });
    // Only what grants has a schedule; a removal ends what is there.
    if matches!(spec.request_type, RequestType::SelfActivate | RequestType::AdminAssign) {
        properties["scheduleInfo"] = match spec.ends_at {
            // No start: Azure starts it when it takes the request, whatever the operator's clock says.
            Some(end) => json!({"expiration": {"type": "AfterDateTime", "endDateTime": end.to_string()}}),
            None => json!({"expiration": {"type": "AfterDuration", "duration": iso_duration(spec.duration)}}),
        };
    }
    if let Some((system, number)) = &spec.ticket {
        properties["ticketInfo"] = json!({"ticketSystem": system, "ticketNumber": number});
    }
    let sent = client
        .send(
            &Call::new(Method::PUT, path.as_str(), PIM_API)
                .in_tenant(spec.tenant.as_deref())
                .body(json!({"properties": properties})),
        )
        .await;
    let reply = match sent {
        Ok(reply) => reply,
        // The same request was made before (a retry after its answer was lost): it is the answer.
        Err(err) if spec.name.is_some() && err.code() == Some("RoleAssignmentRequestExists") => {
            client
                .send(&Call::new(Method::GET, path.as_str(), PIM_API).in_tenant(spec.tenant.as_deref()))
                .await?
        }
        Err(err) => return Err(err),
    };
    decode::<ScheduleRequestWire>("a PIM schedule request", reply.body).map(ScheduleRequest::from)
}

pub async fn get_schedule_request(client: &ArmClient, id: &str) -> Result<ScheduleRequest, AzureError> {
    get_schedule_request_in(client, None, id).await
}

/// A PIM request in `tenant` (none: the home tenant); `None` when Azure has no such request.
pub async fn find_schedule_request_in(
    client: &ArmClient,
    tenant: Option<&str>,
    id: &str,
) -> Result<Option<ScheduleRequest>, AzureError> {
    match get_schedule_request_in(client, tenant, id).await {
        Ok(found) => Ok(Some(found)),
        Err(AzureError::Arm { status: 404, .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

async fn get_schedule_request_in(
    client: &ArmClient,
    tenant: Option<&str>,
    id: &str,
) -> Result<ScheduleRequest, AzureError> {
    let reply = client
        .send(&Call::new(Method::GET, id, PIM_API).in_tenant(tenant))
        .await?;
    decode::<ScheduleRequestWire>("a PIM schedule request", reply.body).map(ScheduleRequest::from)
}

/// Cancels a request in `tenant` (none: the home tenant) that is still waiting for approval; only its
/// requestor may.
pub async fn cancel_schedule_request_in(client: &ArmClient, tenant: Option<&str>, id: &str) -> Result<(), AzureError> {
    client
        .send(&Call::new(Method::POST, format!("{id}/cancel"), PIM_API).in_tenant(tenant))
        .await
        .map(|_| ())
}

/// Ends `principal`'s assignment of `role` at `scope`: `AdminRemove` by an identity that may assign roles
/// there, or `SelfDeactivate` by the principal itself. An assignment that is already gone (Azure's own
/// end time passed, or an earlier removal went through) counts as ended.
pub async fn end_assignment(client: &ArmClient, spec: &ScheduleRequestSpec) -> Result<(), AzureError> {
    match request_schedule(client, spec).await {
        Ok(_) => Ok(()),
        Err(err) if err.code() == Some("RoleAssignmentDoesNotExist") => Ok(()),
        Err(err) => Err(err),
    }
}

/// PIM refuses to end an activation within five minutes of its start (Azure's error code for it).
pub fn is_too_soon_to_deactivate(err: &AzureError) -> bool {
    err.code() == Some("ActiveDurationTooShort")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_the_iso_8601_way() {
        assert_eq!(iso_duration(std::time::Duration::from_secs(5400)), "PT1H30M");
        assert_eq!(iso_duration(std::time::Duration::from_secs(8 * 3600)), "PT8H");
        assert_eq!(iso_duration(std::time::Duration::from_secs(61)), "PT1M1S");
        assert_eq!(iso_duration(std::time::Duration::ZERO), "PT0S");
    }

    #[test]
    fn pim_statuses_decode_to_the_enum_and_unknown_ones_are_kept() {
        let known = json!({"id": "/r", "properties": {"status": "PendingApproval", "approvalId": "a1"}});
        let request = ScheduleRequest::from(decode::<ScheduleRequestWire>("t", known).unwrap());
        assert_eq!(
            (request.status, request.approval_id.as_deref()),
            (ScheduleStatus::PendingApproval, Some("a1"))
        );
        let novel = json!({"id": "/r", "properties": {"status": "SomethingNew"}});
        let request = ScheduleRequest::from(decode::<ScheduleRequestWire>("t", novel).unwrap());
        assert_eq!(request.status, ScheduleStatus::Other("SomethingNew".into()));
        assert!(
            decode::<ScheduleRequestWire>("t", json!({"id": "/r", "properties": {}})).is_err(),
            "no status"
        );
        assert!(decode::<RoleAssignmentWire>("t", json!({"id": "/a", "properties": {"scope": "/s"}})).is_err());
    }

    #[test]
    fn role_definitions_are_named_from_the_scope() {
        assert_eq!(
            role_definition_id("/subscriptions/s1/resourceGroups/rg", CONTRIBUTOR),
            format!("/subscriptions/s1/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}")
        );
        assert_eq!(
            role_definition_id("", READER),
            format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}")
        );
    }
}

/// What PIM requires before it activates a role at a scope: whether an approval is needed, and from
/// whom (the approvers' object IDs, lower case). From the role management policy assigned for the role
/// there (`roleManagementPolicyAssignments`, then the policy's `RoleManagementPolicyApprovalRule` for
/// end users' activations). No policy assigned: PIM's default, no approval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActivationApproval {
    pub required: bool,
    pub approvers: Vec<String>,
}

pub async fn activation_approval(
    client: &ArmClient,
    tenant: Option<&str>,
    scope: &str,
    role: &str,
) -> Result<ActivationApproval, AzureError> {
    let role_id = role_definition_id(scope, role);
    let path = format!(
        "{scope}/providers/Microsoft.Authorization/roleManagementPolicyAssignments?$filter=roleDefinitionId%20eq%20'{role_id}'"
    );
    let assignments = client
        .list(&Call::new(Method::GET, path, PIM_API).in_tenant(tenant))
        .await?;
    let Some(policy_id) = assignments
        .iter()
        .find_map(|a| a["properties"]["policyId"].as_str().map(str::to_string))
    else {
        return Ok(ActivationApproval::default());
    };
    let policy = client
        .send(&Call::new(Method::GET, policy_id.as_str(), PIM_API).in_tenant(tenant))
        .await?
        .body;
    let rules = policy["properties"]["rules"].as_array().cloned().unwrap_or_default();
    let approval = rules.iter().find(|r| {
        r["ruleType"] == "RoleManagementPolicyApprovalRule"
            && r["target"]["caller"].as_str().is_none_or(|c| c == "EndUser")
    });
    let Some(setting) = approval.map(|r| &r["setting"]) else {
        return Ok(ActivationApproval::default());
    };
    let approvers = setting["approvalStages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|stage| stage["primaryApprovers"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["id"].as_str().map(str::to_ascii_lowercase))
        .collect();
    Ok(ActivationApproval {
        required: setting["isApprovalRequired"].as_bool().unwrap_or(false),
        approvers,
    })
}
