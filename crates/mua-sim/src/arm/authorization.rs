//! `Microsoft.Authorization`: role assignments, and PIM (eligibility schedules, role management policies,
//! role assignment schedule requests with approval, and approvals).

use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::request::{ArmRequest, ArmResponse, ArmResult, page};
use crate::authz::{self, scope_covers};
use crate::error::ArmError;
use crate::state::SimState;
use crate::world::{PendingApproval, RoleAssignment, World};

const ASSIGNMENT_TYPE: &str = "Microsoft.Authorization/roleAssignments";
const REQUEST_TYPE: &str = "Microsoft.Authorization/RoleAssignmentScheduleRequests";
const ASSIGN_ACTION: &str = "Microsoft.Authorization/roleAssignments/write";

fn role_definition_id(scope: &str, guid: &str) -> String {
    let sub = scope
        .split('/')
        .nth(2)
        .filter(|_| scope.to_ascii_lowercase().starts_with("/subscriptions/"));
    match sub {
        Some(sub) => format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
        None => format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
    }
}

fn render_assignment(a: &RoleAssignment) -> Value {
    json!({
        "properties": {
            "roleDefinitionId": role_definition_id(&a.scope, &a.role_definition),
            "principalId": a.principal_id,
            "principalType": a.principal_type,
            "scope": a.scope,
            "createdOn": a.created_on.to_string(),
        },
        "id": a.id,
        "type": ASSIGNMENT_TYPE,
        "name": a.name,
    })
}

fn principal_type(world: &World, principal: &str) -> Option<String> {
    world.principals.get(principal).map(|p| p.kind.arm_name().to_string())
}

pub fn get_assignment(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    sim.read(|w| w.role_assignments.get(&id.to_ascii_lowercase()).map(render_assignment))
        .map(ArmResponse::ok)
        .ok_or_else(|| {
            ArmError::new(
                StatusCode::NOT_FOUND,
                "RoleAssignmentNotFound",
                format!("The role assignment '{}' is not found.", req.path.names[0]),
            )
        })
}

pub fn put_assignment(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    let props = &req.body["properties"];
    let role_id = props["roleDefinitionId"].as_str().unwrap_or_default();
    let Some(role) = sim.read(|w| authz::role(w, role_id).cloned()) else {
        return Err(ArmError::bad_request(
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{role_id}' does not exist."),
        ));
    };
    let principal = props["principalId"].as_str().unwrap_or_default().to_ascii_lowercase();
    let now = sim.clock.now();
    sim.write(|w| {
        let Some(kind) = principal_type(w, &principal) else {
            return Err(ArmError::bad_request(
                "PrincipalNotFound",
                format!("Principal {principal} does not exist in the directory."),
            ));
        };
        let scope = req.path.scope.clone();
        if let Some(existing) = w.role_assignments.values().find(|a| {
            a.principal_id == principal
                && a.role_definition.eq_ignore_ascii_case(&role.id)
                && a.scope.eq_ignore_ascii_case(&scope)
                && !a.id.eq_ignore_ascii_case(&id)
        }) {
            return Err(
                ArmError::conflict(format!("The role assignment already exists: {}", existing.id))
                    .with_code("RoleAssignmentExists"),
            );
        }
        let key = id.to_ascii_lowercase();
        let existed = w.role_assignments.contains_key(&key);
        let assignment = RoleAssignment {
            id: id.clone(),
            name: req.path.names[0].clone(),
            scope,
            role_definition: role.id.clone(),
            principal_id: principal.clone(),
            principal_type: props["principalType"].as_str().map(str::to_string).unwrap_or(kind),
            end_time: None,
            schedule_request: None,
            created_on: now,
        };
        let body = render_assignment(&assignment);
        w.role_assignments.insert(key, assignment);
        Ok(ArmResponse::with_status(
            if existed { StatusCode::OK } else { StatusCode::CREATED },
            body,
        ))
    })
}

pub fn delete_assignment(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let key = req.path.resource_id().to_ascii_lowercase();
    sim.write(|w| match w.role_assignments.remove(&key) {
        Some(a) => Ok(ArmResponse::ok(render_assignment(&a))),
        None => Ok(ArmResponse::empty(StatusCode::NO_CONTENT)),
    })
}

const ROLE_DEFINITION_TYPE: &str = "Microsoft.Authorization/roleDefinitions";

/// A role definition as ARM returns it at `scope` (its ID under the scope's subscription).
fn render_role_definition(scope: &str, role: &authz::RoleDefinition) -> Value {
    let builtin = authz::BUILTIN_ROLES.iter().any(|b| b.id == role.id);
    json!({
        "properties": {
            "roleName": role.name,
            "type": if builtin { "BuiltInRole" } else { "CustomRole" },
            "description": role.name,
            "assignableScopes": ["/"],
            "permissions": [{
                "actions": role.actions,
                "notActions": role.not_actions,
                "dataActions": [],
                "notDataActions": [],
            }],
        },
        "id": role_definition_id(scope, &role.id),
        "type": ROLE_DEFINITION_TYPE,
        "name": role.id,
    })
}

/// `GET {scope}/providers/Microsoft.Authorization/roleDefinitions/{id}`.
pub fn get_role_definition(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = &req.path.names[0];
    sim.read(|w| {
        authz::role(w, id)
            .filter(|r| r.id.eq_ignore_ascii_case(id))
            .map(|r| ArmResponse::ok(render_role_definition(&req.path.scope, r)))
            .ok_or_else(|| {
                ArmError::new(
                    StatusCode::NOT_FOUND,
                    "RoleDefinitionDoesNotExist",
                    format!("The specified role definition with ID '{id}' does not exist."),
                )
            })
    })
}

/// `GET {scope}/providers/Microsoft.Authorization/roleDefinitions`, with the filters ARM supports:
/// `roleName eq '...'` and `type eq '...'`. `az role assignment create --role Reader --scope S` (azure-cli
/// 2.91.0, seen with `--debug`) sends `GET S/providers/Microsoft.Authorization/roleDefinitions?
/// api-version=2022-05-01-preview&$filter=roleName eq 'Reader'` and takes the first item's `id`; the item
/// shape is the `RoleDefinition` of `authorization-RoleDefinitionsCalls.json`.
pub fn list_role_definitions(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let filter = req.query.get("$filter").map(String::as_str).unwrap_or_default().trim();
    let (field, value) = if filter.is_empty() {
        ("", String::new())
    } else {
        let parsed = filter.split_once(" eq ").and_then(|(field, value)| {
            let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
            Some((field.trim(), value.replace("''", "'")))
        });
        match parsed {
            Some((field, value)) if field.eq_ignore_ascii_case("roleName") => ("roleName", value),
            Some((field, value)) if field.eq_ignore_ascii_case("type") => ("type", value),
            _ => {
                return Err(ArmError::bad_request(
                    "UnsupportedQuery",
                    format!("The filter '{filter}' is not supported; use roleName eq '<name>' or type eq '<type>'."),
                ));
            }
        }
    };
    let value: Vec<Value> = sim.read(|w| {
        authz::BUILTIN_ROLES
            .iter()
            .chain(w.role_definitions.values())
            .map(|r| render_role_definition(&req.path.scope, r))
            .filter(|r| match field {
                "roleName" => r["properties"]["roleName"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&value)),
                "type" => r["properties"]["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case(&value)),
                _ => true,
            })
            .collect()
    });
    Ok(ArmResponse::ok(json!({ "value": value })))
}

/// The value of `principalId eq '...'` in an OData filter, if present.
fn filter_principal(req: &ArmRequest) -> Option<String> {
    let filter = req.query.get("$filter")?;
    let start = filter.find("principalId eq '")? + "principalId eq '".len();
    filter[start..].split('\'').next().map(str::to_ascii_lowercase)
}

/// Assignments that apply at the scope (at or above it) and, without `atScope()`, those below it too.
pub fn list_assignments(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let scope = req.path.scope.clone();
    let at_scope = req.query.get("$filter").is_some_and(|f| f.contains("atScope()"));
    let principal = filter_principal(req);
    let value: Vec<Value> = sim.read(|w| {
        w.role_assignments
            .values()
            .filter(|a| scope_covers(&a.scope, &scope) || (!at_scope && scope_covers(&scope, &a.scope)))
            .filter(|a| principal.as_ref().is_none_or(|p| &a.principal_id == p))
            .map(render_assignment)
            .collect()
    });
    page(sim, req, value)
}

/// An ISO 8601 duration of days, hours, minutes and seconds (what PIM uses: `PT8H`, `P1D`).
pub fn parse_iso_duration(text: &str) -> Option<SignedDuration> {
    let span: jiff::Span = text.parse().ok()?;
    span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).ok()
}

/// The schedule a request asks for: `(start, end)`, `end` absent for NoExpiration.
fn schedule(now: Timestamp, info: &Value) -> Result<(Timestamp, Option<Timestamp>), ArmError> {
    let start = info["startDateTime"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(now)
        .max(now);
    let expiration = &info["expiration"];
    let end = match expiration["type"].as_str().unwrap_or("AfterDuration") {
        "NoExpiration" => None,
        "AfterDateTime" => Some(
            expiration["endDateTime"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    ArmError::bad_request(
                        "InvalidScheduleInfo",
                        "expiration.endDateTime is required for AfterDateTime.",
                    )
                })?,
        ),
        _ => {
            let text = expiration["duration"].as_str().unwrap_or_default();
            let duration = parse_iso_duration(text).filter(|d| d.is_positive()).ok_or_else(|| {
                ArmError::bad_request(
                    "InvalidScheduleInfo",
                    format!("expiration.duration '{text}' is not a positive ISO 8601 duration."),
                )
            })?;
            Some(start.checked_add(duration).map_err(|_| {
                ArmError::bad_request(
                    "InvalidScheduleInfo",
                    format!("expiration.duration '{text}' is too long."),
                )
            })?)
        }
    };
    // A schedule that ends before it starts cannot be granted (and its length would not fit).
    if let Some(end) = end
        && end <= start
    {
        return Err(ArmError::bad_request(
            "InvalidScheduleInfo",
            format!("The schedule must end after it starts: it starts at {start} and ends at {end}."),
        ));
    }
    Ok((start, end))
}

/// The policy rules for a role at a scope (from `roleManagementPolicies`).
struct PolicyRules {
    approval_required: bool,
    approvers: Vec<String>,
    /// How long approvers have to decide before the request times out.
    approval_timeout: SignedDuration,
    maximum_duration: Option<SignedDuration>,
    justification_required: bool,
    ticket_required: bool,
}

fn policy_for(w: &World, scope: &str, role: &str) -> PolicyRules {
    let mut rules = PolicyRules {
        approval_required: false,
        approvers: Vec::new(),
        approval_timeout: SignedDuration::from_hours(24),
        // PIM's default policy: activations last at most 8 hours.
        maximum_duration: Some(SignedDuration::from_hours(8)),
        justification_required: false,
        ticket_required: false,
    };
    // The most specific policy that covers the scope wins (a guard's own policy over its subscription's).
    let Some(policy) = governing_policy(w, scope, role) else {
        return rules;
    };
    for rule in policy["properties"]["rules"].as_array().into_iter().flatten() {
        let end_user_assignment = rule["target"]["caller"].as_str().is_none_or(|c| c == "EndUser");
        match rule["ruleType"].as_str().unwrap_or_default() {
            "RoleManagementPolicyApprovalRule" if end_user_assignment => {
                let setting = &rule["setting"];
                rules.approval_required = setting["isApprovalRequired"].as_bool().unwrap_or(false);
                if let Some(days) = setting["approvalStages"][0]["approvalStageTimeOutInDays"].as_i64() {
                    rules.approval_timeout = SignedDuration::from_hours(24 * days.clamp(1, 365));
                }
                rules.approvers = setting["approvalStages"][0]["primaryApprovers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["id"].as_str().map(str::to_ascii_lowercase))
                    .collect();
            }
            "RoleManagementPolicyExpirationRule" if end_user_assignment => {
                rules.maximum_duration = rule["maximumDuration"].as_str().and_then(parse_iso_duration);
            }
            "RoleManagementPolicyEnablementRule" if end_user_assignment => {
                let enabled: Vec<&str> = rule["enabledRules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                rules.justification_required = enabled.contains(&"Justification");
                rules.ticket_required = enabled.contains(&"Ticketing");
            }
            _ => {}
        }
    }
    rules
}

fn policy_failure(message: impl Into<String>) -> ArmError {
    ArmError::bad_request("RoleAssignmentRequestPolicyValidationFailed", message)
}

/// Grants the role for the request's schedule and marks the request Provisioned.
fn provision(w: &mut World, request_key: &str, now: Timestamp) {
    let Some(request) = w.schedule_requests.get_mut(request_key) else {
        return;
    };
    let props = request["properties"].clone();
    let scope = props["scope"].as_str().unwrap_or_default().to_string();
    let principal = props["principalId"].as_str().unwrap_or_default().to_ascii_lowercase();
    let role = props["roleDefinitionId"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let (start, end) = schedule(now, &props["scheduleInfo"]).unwrap_or((now, Some(now)));
    // The schedule runs from provisioning (after approval), not from the original request.
    let end = end.map(|end| now.checked_add(end.duration_since(start)).unwrap_or(Timestamp::MAX));
    request["properties"]["status"] = json!("Provisioned");
    let kind = w
        .principals
        .get(&principal)
        .map(|p| p.kind.arm_name().to_string())
        .unwrap_or("ServicePrincipal".into());
    let name = uuid::Uuid::new_v4().to_string();
    let id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
    w.role_assignments.insert(
        id.to_ascii_lowercase(),
        RoleAssignment {
            id,
            name,
            scope,
            role_definition: role,
            principal_id: principal,
            principal_type: kind,
            end_time: end,
            schedule_request: Some(request_key.to_string()),
            created_on: now,
        },
    );
}

/// Removes the assignment of a role to a principal at exactly this scope: only PIM activations when
/// `activations_only` (SelfDeactivate never touches a standing assignment), any otherwise (AdminRemove).
fn remove_assignment(w: &mut World, scope: &str, principal: &str, role: &str, activations_only: bool) -> bool {
    let before = w.role_assignments.len();
    w.role_assignments.retain(|_, a| {
        !(a.scope.eq_ignore_ascii_case(scope)
            && a.principal_id.eq_ignore_ascii_case(principal)
            && a.role_definition.eq_ignore_ascii_case(role)
            && (!activations_only || a.schedule_request.is_some()))
    });
    w.role_assignments.len() < before
}

/// One role assignment schedule request, as PIM evaluates it.
struct ScheduleRequest<'a> {
    key: String,
    scope: &'a str,
    caller: String,
    principal: String,
    role: authz::RoleDefinition,
    props: &'a Value,
    start: Timestamp,
    end: Option<Timestamp>,
    now: Timestamp,
}

/// What PIM decided: the request's status and, when it waits for approval, the approval's ID.
type Outcome = (&'static str, Option<String>);

fn self_only(r: &ScheduleRequest) -> Result<(), ArmError> {
    if r.principal == r.caller {
        return Ok(());
    }
    Err(ArmError::forbidden(
        "A self request must be made by the principal it is for.",
    ))
}

fn not_assigned() -> ArmError {
    ArmError::bad_request("RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
}

/// SelfActivate: needs an eligibility covering the scope and a request that meets the role's policy.
fn self_activate(w: &mut World, r: &ScheduleRequest) -> Result<Outcome, ArmError> {
    self_only(r)?;
    let role_suffix = r.role.id.to_ascii_lowercase();
    let eligible = w.eligibility_schedules.values().any(|e| {
        let p = &e["properties"];
        p["principalId"]
            .as_str()
            .is_some_and(|x| x.eq_ignore_ascii_case(&r.principal))
            && p["roleDefinitionId"]
                .as_str()
                .is_some_and(|x| x.to_ascii_lowercase().ends_with(&role_suffix))
            && scope_covers(p["scope"].as_str().unwrap_or_default(), r.scope)
            && p["endDateTime"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .is_none_or(|t| t > r.now)
    });
    if !eligible {
        return Err(ArmError::bad_request(
            "RoleAssignmentDoesNotExist",
            "The Role assignment does not exist: the principal is not eligible for this role at this scope.",
        ));
    }
    refuse_if_assigned(w, r)?;
    let rules = policy_for(w, r.scope, &r.role.id);
    let Some(end) = r.end else {
        return Err(policy_failure("An activation must have an end (ExpirationRule)."));
    };
    if let Some(max) = rules.maximum_duration
        && end.duration_since(r.start) > max
    {
        return Err(policy_failure(format!(
            "The role assignment request exceeds the maximum activation duration {max:#} (ExpirationRule)."
        )));
    }
    // Text of only whitespace is no justification (nor ticket number).
    let blank = |v: &Value| v.as_str().is_none_or(|s| s.trim().is_empty());
    if rules.justification_required && blank(&r.props["justification"]) {
        return Err(policy_failure(
            "Justification is required by the policy (EnablementRule).",
        ));
    }
    if rules.ticket_required && blank(&r.props["ticketInfo"]["ticketNumber"]) {
        return Err(policy_failure(
            "Ticket information is required by the policy (EnablementRule).",
        ));
    }
    if !rules.approval_required {
        return Ok(("Provisioned", None));
    }
    let approval = uuid::Uuid::new_v4().to_string();
    w.approvals.insert(
        approval.clone(),
        PendingApproval {
            id: approval.clone(),
            request: r.key.clone(),
            approvers: rules.approvers,
            expires: Some(r.now + rules.approval_timeout),
        },
    );
    Ok(("PendingApproval", Some(approval)))
}

/// SelfDeactivate: ends the caller's own activation (never a standing assignment).
fn self_deactivate(w: &mut World, r: &ScheduleRequest) -> Result<Outcome, ArmError> {
    self_only(r)?;
    // PIM refuses to end an activation in its first five minutes (Microsoft Learn, "Activate my Azure
    // resource roles in PIM": a role cannot be deactivated within five minutes of activation).
    let too_recent = w.role_assignments.values().any(|a| {
        a.scope.eq_ignore_ascii_case(r.scope)
            && a.principal_id.eq_ignore_ascii_case(&r.principal)
            && a.role_definition.eq_ignore_ascii_case(&r.role.id)
            && a.schedule_request.is_some()
            && r.now.duration_since(a.created_on) < SignedDuration::from_mins(5)
    });
    if too_recent {
        return Err(ArmError::bad_request(
            "ActiveDurationTooShort",
            "The role assignment cannot be deactivated within 5 minutes of its activation.",
        ));
    }
    if !remove_assignment(w, r.scope, &r.principal, &r.role.id, true) {
        return Err(not_assigned());
    }
    Ok(("Revoked", None))
}

/// PIM keeps one assignment per principal, role and scope: a grant while one is in force is refused, never
/// merged with it or extending it.
fn refuse_if_assigned(w: &World, r: &ScheduleRequest) -> Result<(), ArmError> {
    let in_force = w.role_assignments.values().any(|a| {
        a.scope.eq_ignore_ascii_case(r.scope)
            && a.principal_id.eq_ignore_ascii_case(&r.principal)
            && a.role_definition.eq_ignore_ascii_case(&r.role.id)
            && a.end_time.is_none_or(|end| end > r.now)
    });
    if in_force {
        return Err(ArmError::conflict("The Role assignment already exists.").with_code("RoleAssignmentExists"));
    }
    Ok(())
}

/// AdminAssign and AdminRemove: need the right to assign roles at the scope.
fn admin_request(w: &mut World, r: &ScheduleRequest, remove: bool) -> Result<Outcome, ArmError> {
    if !authz::is_allowed(w, &r.caller, ASSIGN_ACTION, r.scope, r.now) {
        return Err(ArmError::authorization_failed(&r.caller, ASSIGN_ACTION, r.scope));
    }
    if !remove {
        refuse_if_assigned(w, r)?;
        return Ok(("Provisioned", None));
    }
    if !remove_assignment(w, r.scope, &r.principal, &r.role.id, false) {
        return Err(not_assigned());
    }
    Ok(("Revoked", None))
}

pub fn put_schedule_request(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    let props = &req.body["properties"];
    let role_id = props["roleDefinitionId"].as_str().unwrap_or_default().to_string();
    let Some(role) = sim.read(|w| authz::role(w, &role_id).cloned()) else {
        return Err(ArmError::bad_request(
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{role_id}' does not exist."),
        ));
    };
    let now = sim.clock.now();
    // A removal ends what is there and needs no schedule (Azure PowerShell's SelfDeactivate and
    // AdminRemove examples send none); one it is given must still be valid.
    let removal = matches!(props["requestType"].as_str(), Some("SelfDeactivate" | "AdminRemove"));
    let (start, end) = match props.get("scheduleInfo") {
        None if removal => (now, None),
        _ => schedule(now, &props["scheduleInfo"])?,
    };
    let request = ScheduleRequest {
        key: id.to_ascii_lowercase(),
        scope: &req.path.scope,
        caller: req.caller.oid.to_ascii_lowercase(),
        principal: props["principalId"].as_str().unwrap_or_default().to_ascii_lowercase(),
        role,
        props,
        start,
        end,
        now,
    };
    sim.write(|w| {
        if w.schedule_requests.contains_key(&request.key) {
            let message = format!(
                "The role assignment schedule request '{}' already exists.",
                req.path.names[0]
            );
            return Err(ArmError::conflict(message).with_code("RoleAssignmentRequestExists"));
        }
        let kind = principal_type(w, &request.principal).ok_or_else(|| {
            ArmError::bad_request(
                "PrincipalNotFound",
                format!("Principal {} does not exist in the directory.", request.principal),
            )
        })?;
        let (status, approval_id) = match props["requestType"].as_str().unwrap_or_default() {
            "SelfActivate" => self_activate(w, &request)?,
            "SelfDeactivate" => self_deactivate(w, &request)?,
            "AdminAssign" => admin_request(w, &request, false)?,
            "AdminRemove" => admin_request(w, &request, true)?,
            other => {
                return Err(ArmError::bad_request(
                    "InvalidRequestType",
                    format!(
                        "The request type '{other}' is not supported here; use SelfActivate, SelfDeactivate, \
                         AdminAssign or AdminRemove."
                    ),
                ));
            }
        };
        let mut properties = props.clone();
        properties["scope"] = json!(request.scope);
        properties["roleDefinitionId"] = json!(role_definition_id(request.scope, &request.role.id));
        properties["principalType"] = json!(kind);
        properties["status"] = json!(status);
        properties["approvalId"] = json!(approval_id);
        properties["requestorId"] = json!(request.caller);
        properties["createdOn"] = json!(now.to_string());
        // PIM names the schedule a request will create when it accepts the request.
        properties["targetRoleAssignmentScheduleId"] = json!(uuid::Uuid::new_v4().to_string());
        properties["targetRoleAssignmentScheduleInstanceId"] = Value::Null;
        if properties["ticketInfo"].is_null() {
            properties["ticketInfo"] = json!({"ticketNumber": null, "ticketSystem": null});
        }
        properties["expandedProperties"] = expanded_properties(w, request.scope, &request.role, &request.principal);
        let body = json!({"properties": properties, "name": req.path.names[0], "id": id, "type": REQUEST_TYPE});
        w.schedule_requests.insert(request.key.clone(), body);
        if status == "Provisioned" {
            provision(w, &request.key, now);
        }
        Ok(ArmResponse::with_status(
            StatusCode::CREATED,
            w.schedule_requests[&request.key].clone(),
        ))
    })
}

/// The display names PIM adds to a request: scope, role and principal.
fn expanded_properties(w: &World, scope: &str, role: &authz::RoleDefinition, principal: &str) -> Value {
    let segments: Vec<&str> = scope.trim_start_matches('/').split('/').collect();
    let (scope_type, scope_name) = match segments.len() {
        2 => (
            "subscription",
            w.subscription(segments[1]).map(|s| s.name.clone()).unwrap_or_default(),
        ),
        4 => ("resourcegroup", segments[3].to_string()),
        _ => ("resource", segments.last().unwrap_or(&"").to_string()),
    };
    let builtin = authz::BUILTIN_ROLES.iter().any(|r| r.id == role.id);
    let p = w.principals.get(principal);
    json!({
        "scope": {"id": scope, "displayName": scope_name, "type": scope_type},
        "roleDefinition": {"id": role_definition_id(scope, &role.id), "displayName": role.name, "type": if builtin { "BuiltInRole" } else { "CustomRole" }},
        "principal": {
            "id": principal,
            "displayName": p.map(|p| p.display_name.clone()).unwrap_or_default(),
            "email": p.and_then(|p| p.user_principal_name.clone()).unwrap_or_default(),
            "type": p.map(|p| p.kind.arm_name()).unwrap_or("ServicePrincipal"),
        },
    })
}

fn can_see_request(w: &World, req: &ArmRequest, body: &Value, now: Timestamp) -> bool {
    let caller = req.caller.oid.to_ascii_lowercase();
    let p = &body["properties"];
    p["principalId"]
        .as_str()
        .is_some_and(|x| x.eq_ignore_ascii_case(&caller))
        || p["requestorId"]
            .as_str()
            .is_some_and(|x| x.eq_ignore_ascii_case(&caller))
        || authz::is_allowed(
            w,
            &caller,
            "Microsoft.Authorization/roleAssignmentScheduleRequests/read",
            &req.path.scope,
            now,
        )
}

pub fn get_schedule_request(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let key = req.path.resource_id().to_ascii_lowercase();
    let now = sim.clock.now();
    sim.read(|w| {
        w.schedule_requests
            .get(&key)
            .filter(|b| can_see_request(w, req, b, now))
            .cloned()
    })
    .map(ArmResponse::ok)
    .ok_or_else(|| {
        ArmError::new(
            StatusCode::NOT_FOUND,
            "RoleAssignmentScheduleRequestNotFound",
            format!(
                "The role assignment schedule request '{}' is not found.",
                req.path.names[0]
            ),
        )
    })
}

pub fn list_schedule_requests(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let now = sim.clock.now();
    let value: Vec<Value> = sim.read(|w| {
        w.schedule_requests
            .values()
            .filter(|b| scope_covers(&req.path.scope, b["properties"]["scope"].as_str().unwrap_or_default()))
            .filter(|b| can_see_request(w, req, b, now))
            .cloned()
            .collect()
    });
    Ok(ArmResponse::ok(json!({ "value": value })))
}

pub fn cancel_schedule_request(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let key = req.path.resource_id_of(1).to_ascii_lowercase();
    let caller = req.caller.oid.to_ascii_lowercase();
    sim.write(|w| {
        let Some(body) = w.schedule_requests.get_mut(&key) else {
            return Err(ArmError::new(
                StatusCode::NOT_FOUND,
                "RoleAssignmentScheduleRequestNotFound",
                "The role assignment schedule request is not found.",
            ));
        };
        if body["properties"]["requestorId"].as_str().is_none_or(|r| r != caller) {
            return Err(ArmError::forbidden("Only the requestor can cancel a request."));
        }
        if body["properties"]["status"] != "PendingApproval" {
            return Err(ArmError::bad_request(
                "RequestCannotBeCancelled",
                "Only a request that is pending approval can be cancelled.",
            ));
        }
        body["properties"]["status"] = json!("Canceled");
        if let Some(approval) = body["properties"]["approvalId"].as_str().map(str::to_string) {
            w.approvals.remove(&approval);
        }
        Ok(ArmResponse::empty(StatusCode::OK))
    })
}

/// Whether the caller may read `kind` (e.g. `roleEligibilitySchedules`) at the request's scope.
fn may_read(w: &World, req: &ArmRequest, kind: &str, now: Timestamp) -> bool {
    let action = format!("Microsoft.Authorization/{kind}/read");
    authz::is_allowed(w, &req.caller.oid.to_ascii_lowercase(), &action, &req.path.scope, now)
}

/// Eligibility schedules at a scope: the caller's own with `$filter=asTarget()`, all of them for those who
/// may read the scope's authorization data.
pub fn list_eligibility_schedules(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let principal = filter_principal(req);
    let caller = req.caller.oid.to_ascii_lowercase();
    let as_target = req.query.get("$filter").is_some_and(|f| f.contains("asTarget()"));
    let now = sim.clock.now();
    sim.read(|w| {
        if !as_target && !may_read(w, req, "roleEligibilitySchedules", now) {
            return Err(forbidden_read(req, "roleEligibilitySchedules"));
        }
        let value: Vec<Value> = w
            .eligibility_schedules
            .values()
            .filter(|e| scope_covers(e["properties"]["scope"].as_str().unwrap_or_default(), &req.path.scope))
            .filter(|e| {
                let p = e["properties"]["principalId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                principal.as_ref().is_none_or(|x| *x == p) && (!as_target || p == caller)
            })
            .cloned()
            .collect();
        Ok(ArmResponse::ok(json!({ "value": value })))
    })
}

/// Role management policies at a scope, for those who may read the scope's authorization data.
pub fn list_policies(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let now = sim.clock.now();
    sim.read(|w| {
        if !may_read(w, req, "roleManagementPolicies", now) {
            return Err(forbidden_read(req, "roleManagementPolicies"));
        }
        let value: Vec<Value> = w
            .role_management_policies
            .values()
            .filter(|p| scope_covers(p["properties"]["scope"].as_str().unwrap_or_default(), &req.path.scope))
            .cloned()
            .collect();
        Ok(ArmResponse::ok(json!({ "value": value })))
    })
}

/// The policy that governs `role` at `scope`: the most specific one covering it.
fn governing_policy<'w>(w: &'w World, scope: &str, role: &str) -> Option<&'w Value> {
    w.role_management_policies
        .values()
        .filter(|p| {
            scope_covers(p["properties"]["scope"].as_str().unwrap_or_default(), scope)
                && p["properties"]["roleDefinitionId"]
                    .as_str()
                    .is_some_and(|r| r.to_ascii_lowercase().ends_with(&role.to_ascii_lowercase()))
        })
        .max_by_key(|p| p["properties"]["scope"].as_str().map_or(0, str::len))
}

/// Role management policy assignments at a scope: for each role (or the one `$filter=roleDefinitionId eq
/// '<id>'` names), the policy that governs it there, as `{scope, roleDefinitionId, policyId}`. Azure names
/// an assignment `<policy name>_<role GUID>`.
pub fn list_policy_assignments(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let now = sim.clock.now();
    let wanted = req.query.get("$filter").and_then(|f| {
        let start = f.find("roleDefinitionId eq '")? + "roleDefinitionId eq '".len();
        f[start..]
            .split('\'')
            .next()
            .and_then(|id| id.rsplit('/').next())
            .map(str::to_ascii_lowercase)
    });
    let scope = req.path.scope.trim_end_matches('/').to_string();
    sim.read(|w| {
        if !may_read(w, req, "roleManagementPolicyAssignments", now) {
            return Err(forbidden_read(req, "roleManagementPolicyAssignments"));
        }
        let roles: std::collections::BTreeSet<String> = w
            .role_management_policies
            .values()
            .filter_map(|p| p["properties"]["roleDefinitionId"].as_str())
            .filter_map(|r| r.rsplit('/').next())
            .map(str::to_ascii_lowercase)
            .filter(|r| wanted.as_ref().is_none_or(|w| w == r))
            .collect();
        let value: Vec<Value> = roles
            .iter()
            .filter_map(|role| {
                let policy = governing_policy(w, &scope, role)?;
                let name = format!("{}_{role}", policy["name"].as_str().unwrap_or_default());
                Some(json!({
                    "id": format!("{scope}/providers/Microsoft.Authorization/roleManagementPolicyAssignments/{name}"),
                    "name": name,
                    "type": "Microsoft.Authorization/RoleManagementPolicyAssignment",
                    "properties": {
                        "scope": scope,
                        "roleDefinitionId": policy["properties"]["roleDefinitionId"],
                        "policyId": policy["id"],
                    },
                }))
            })
            .collect();
        Ok(ArmResponse::ok(json!({ "value": value })))
    })
}

/// One role management policy, by its ID.
pub fn get_policy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let key = req.path.resource_id().to_ascii_lowercase();
    let now = sim.clock.now();
    sim.read(|w| {
        if !may_read(w, req, "roleManagementPolicies", now) {
            return Err(forbidden_read(req, "roleManagementPolicies"));
        }
        w.role_management_policies
            .get(&key)
            .cloned()
            .map(ArmResponse::ok)
            .ok_or_else(|| policy_not_found(req))
    })
}

/// Changes the rules of a policy (`properties.rules`; each replaces the rule of the same `id`), for those
/// who may write the scope's role management policies (a security admin changing a role's settings).
pub fn patch_policy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let key = req.path.resource_id().to_ascii_lowercase();
    let now = sim.clock.now();
    let Some(changes) = req.body["properties"]["rules"].as_array().cloned() else {
        return Err(ArmError::bad_request(
            "InvalidRoleManagementPolicy",
            "properties.rules must be an array of rules.",
        ));
    };
    sim.write(|w| {
        let action = "Microsoft.Authorization/roleManagementPolicies/write";
        if !authz::is_allowed(w, &req.caller.oid.to_ascii_lowercase(), action, &req.path.scope, now) {
            return Err(ArmError::authorization_failed(&req.caller.oid, action, &req.path.scope));
        }
        let Some(policy) = w.role_management_policies.get_mut(&key) else {
            return Err(policy_not_found(req));
        };
        let rules = policy["properties"]["rules"].as_array_mut();
        let Some(rules) = rules else {
            return Err(policy_not_found(req));
        };
        for change in changes {
            match rules.iter_mut().find(|r| r["id"] == change["id"]) {
                Some(rule) => *rule = change,
                None => rules.push(change),
            }
        }
        Ok(ArmResponse::ok(policy.clone()))
    })
}

fn policy_not_found(req: &ArmRequest) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        "RoleManagementPolicyNotFound",
        format!(
            "The role management policy '{}' is not found.",
            req.path.names.first().map(String::as_str).unwrap_or_default()
        ),
    )
}

fn forbidden_read(req: &ArmRequest, kind: &str) -> ArmError {
    ArmError::authorization_failed(
        &req.caller.oid,
        &format!("Microsoft.Authorization/{kind}/read"),
        &req.path.scope,
    )
}

fn render_approval(w: &World, approval: &PendingApproval, caller: &str) -> Value {
    let status = w
        .schedule_requests
        .get(&approval.request)
        .and_then(|r| r["properties"]["status"].as_str())
        .unwrap_or("Unknown");
    let (stage_status, result) = match status {
        "PendingApproval" => ("InProgress", "NotReviewed"),
        "Denied" => ("Completed", "Deny"),
        _ => ("Completed", "Approve"),
    };
    json!({
        "id": format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{}", approval.id),
        "name": approval.id,
        "type": "Microsoft.Authorization/roleAssignmentApprovals",
        "properties": {"stages": [{
            "id": format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{0}/stages/{0}", approval.id),
            "name": approval.id,
            "type": "Microsoft.Authorization/roleAssignmentApprovals/stages",
            "properties": {
                "status": stage_status,
                "reviewResult": result,
                "assignedToMe": approval.approvers.iter().any(|a| a == caller),
                "displayName": "Stage 1",
            }
        }]},
    })
}

pub fn get_approval(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = &req.path.names[0];
    let caller = req.caller.oid.to_ascii_lowercase();
    // Only its approvers see an approval; anyone else is told it does not exist, as for an unknown ID.
    sim.read(|w| {
        w.approvals
            .get(&id.to_ascii_lowercase())
            .filter(|a| a.approvers.contains(&caller))
            .map(|a| render_approval(w, a, &caller))
    })
    .map(ArmResponse::ok)
    .ok_or_else(|| {
        ArmError::new(
            StatusCode::NOT_FOUND,
            "ApprovalNotFound",
            format!("The approval '{id}' is not found."),
        )
    })
}

/// `PUT /providers/Microsoft.Authorization/roleAssignmentApprovals/{id}/stages/{stage}`: an approver's
/// decision. Approvers cannot decide on their own requests.
pub fn decide_approval(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.names[0].clone();
    let caller = req.caller.oid.to_ascii_lowercase();
    // The REST spec's schema for this body is the stage's properties themselves (what the Python SDK's
    // `role_assignment_approval_step.put` sends); its example wraps them in `properties`. Both are read.
    let result = req.body["properties"]["reviewResult"]
        .as_str()
        .or_else(|| req.body["reviewResult"].as_str())
        .unwrap_or_default()
        .to_string();
    if result != "Approve" && result != "Deny" {
        return Err(ArmError::bad_request(
            "InvalidReviewResult",
            "properties.reviewResult must be Approve or Deny.",
        ));
    }
    let now = sim.clock.now();
    sim.write(|w| {
        let Some(approval) = w.approvals.get(&id.to_ascii_lowercase()).cloned() else {
            return Err(ArmError::new(
                StatusCode::NOT_FOUND,
                "ApprovalNotFound",
                format!("The approval '{id}' is not found."),
            ));
        };
        if !approval.approvers.contains(&caller) {
            return Err(ArmError::forbidden(format!(
                "The client '{caller}' is not an approver of '{id}'."
            )));
        }
        let request = w.schedule_requests.get(&approval.request).cloned().unwrap_or_default();
        if request["properties"]["requestorId"]
            .as_str()
            .is_some_and(|r| r == caller)
        {
            return Err(ArmError::forbidden("Approvers cannot approve their own requests."));
        }
        if request["properties"]["status"] != "PendingApproval" {
            return Err(ArmError::bad_request(
                "ApprovalAlreadyCompleted",
                "This approval was already decided.",
            ));
        }
        if result == "Approve" {
            provision(w, &approval.request, now);
        } else if let Some(r) = w.schedule_requests.get_mut(&approval.request) {
            r["properties"]["status"] = json!("Denied");
        }
        // Decided: it can no longer time out.
        if let Some(decided) = w.approvals.get_mut(&approval.id) {
            decided.expires = None;
        }
        let body = render_approval(w, &approval, &caller)["properties"]["stages"][0].clone();
        Ok(ArmResponse::ok(body))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(scope: &str, approval: bool) -> Value {
        json!({"properties": {"scope": scope, "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{}", authz::CONTRIBUTOR),
            "rules": [{"ruleType": "RoleManagementPolicyApprovalRule", "target": {"caller": "EndUser"},
                       "setting": {"isApprovalRequired": approval, "approvalStages": [{"primaryApprovers": [{"id": "bob"}]}]}}]}})
    }

    #[test]
    fn the_most_specific_policy_applies() {
        let mut w = World::default();
        w.role_management_policies
            .insert("/subscriptions/s/p1".into(), policy("/subscriptions/s", false));
        w.role_management_policies.insert(
            "/subscriptions/s/resourcegroups/rg/p2".into(),
            policy("/subscriptions/s/resourceGroups/rg", true),
        );
        assert!(
            policy_for(
                &w,
                "/subscriptions/s/resourceGroups/rg/providers/X/y/g",
                authz::CONTRIBUTOR
            )
            .approval_required
        );
        assert!(!policy_for(&w, "/subscriptions/s/resourceGroups/other", authz::CONTRIBUTOR).approval_required);
    }

    #[test]
    fn without_a_policy_activations_last_at_most_eight_hours() {
        let rules = policy_for(&World::default(), "/subscriptions/s", authz::CONTRIBUTOR);
        assert_eq!(rules.maximum_duration, Some(SignedDuration::from_hours(8)));
        assert!(!rules.approval_required);
    }
}
