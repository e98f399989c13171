//! `Microsoft.DataProtection/resourceGuards` and their request objects.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::request::{ArmRequest, ArmResponse, ArmResult, check_if_match, page};
use crate::error::ArmError;
use crate::operations::CriticalOperation;
use crate::state::SimState;
use crate::world::{StoredResource, new_etag};

pub const GUARD_TYPE: &str = "Microsoft.DataProtection/resourceGuards";
/// What the service reports as a guard's description when none was set (as in the official examples).
pub const DEFAULT_DESCRIPTION: &str = "Please take JIT access before performing any of the critical operation";

/// ARM location names compare without case and spaces ("West US" is "westus").
pub fn normalize_location(location: &str) -> String {
    location
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// A guard as the service stores it: the read-only `resourceGuardOperations` list every operation whose
/// guard request type is known, and the description falls back to the service's default.
pub fn guard_body(
    id: &str,
    name: &str,
    location: &str,
    tags: Value,
    excluded: &[String],
    description: Option<&str>,
) -> Value {
    let operations: Vec<Value> = CriticalOperation::all()
        .flat_map(|op| op.azure_operations())
        .filter_map(|a| {
            a.request_type.map(|rt| {
                json!({
                    "vaultCriticalOperation": a.vault_critical_operation,
                    "requestResourceType": format!("{GUARD_TYPE}/{rt}"),
                })
            })
        })
        .collect();
    json!({
        "id": id,
        "name": name,
        "type": GUARD_TYPE,
        "location": normalize_location(location),
        "tags": tags,
        "properties": {
            "provisioningState": "Succeeded",
            "allowAutoApprovals": true,
            "resourceGuardOperations": operations,
            "vaultCriticalOperationExclusionList": excluded,
            "description": description.unwrap_or(DEFAULT_DESCRIPTION),
        },
    })
}

/// The Azure strings of a guard's exclusion list, refused when one is unknown or mandatory.
fn validate_exclusions(body: &Value) -> Result<Vec<String>, ArmError> {
    let list = &body["properties"]["vaultCriticalOperationExclusionList"];
    let Some(items) = list.as_array() else {
        return if list.is_null() {
            Ok(Vec::new())
        } else {
            Err(ArmError::bad_request(
                "InvalidRequestContent",
                "vaultCriticalOperationExclusionList must be an array of strings.",
            ))
        };
    };
    items
        .iter()
        .map(|item| {
            let name = item.as_str().unwrap_or_default();
            match CriticalOperation::from_azure(name) {
                None => Err(ArmError::bad_request(
                    "BadRequest",
                    format!("'{name}' is not a critical operation a Resource Guard protects."),
                )),
                Some(op) if op.is_mandatory() => Err(ArmError::bad_request(
                    "BadRequest",
                    format!(
                        "'{name}' is a mandatory critical operation and cannot be excluded from the Resource Guard."
                    ),
                )),
                Some(_) => Ok(name.to_string()),
            }
        })
        .collect()
}

fn render(id: &str, stored: &StoredResource) -> Value {
    let mut body = stored.body.clone();
    body["id"] = json!(id);
    body["eTag"] = json!(stored.etag);
    body
}

pub fn get(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    sim.read(|w| w.resource(&id).map(|r| render(&id, r)))
        .map(ArmResponse::ok)
        .ok_or_else(|| not_found(req))
}

fn not_found(req: &ArmRequest) -> ArmError {
    ArmError::not_found(
        GUARD_TYPE,
        &req.path.names[0],
        req.path.resource_group().unwrap_or_default(),
    )
}

pub fn put(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    let name = req.path.names[0].clone();
    let Some(location) = req.body["location"]
        .as_str()
        .map(normalize_location)
        .filter(|l| !l.is_empty())
    else {
        return Err(ArmError::bad_request(
            "LocationRequired",
            "The location property is required for this definition.",
        ));
    };
    let exclusions = validate_exclusions(&req.body)?;
    sim.write(|w| {
        let existing = w.resource(&id).cloned();
        check_if_match(req, existing.as_ref().map(|r| r.etag.as_str()))?;
        if let Some(existing) = &existing {
            let was = existing.body["location"].as_str().unwrap_or_default();
            if was != location {
                return Err(ArmError::bad_request(
                    "InvalidResourceLocation",
                    format!("The resource '{name}' already exists in location '{was}' in resource group '{}'. A resource with the same name cannot be created in location '{location}'. Please select a new resource name.", req.path.resource_group().unwrap_or_default()),
                ));
            }
        }
        let description = req.body["properties"]["description"]
            .as_str()
            .map(str::to_string)
            .or_else(|| existing.as_ref().and_then(|e| e.body["properties"]["description"].as_str().map(str::to_string)));
        let tags = req.body.get("tags").cloned().unwrap_or(json!({}));
        let body = guard_body(&id, &name, &location, tags, &exclusions, description.as_deref());
        let stored = StoredResource { body, etag: new_etag() };
        let rendered = render(&id, &stored);
        w.resources.insert(id.to_ascii_lowercase(), stored);
        let status = if existing.is_some() { StatusCode::OK } else { StatusCode::CREATED };
        Ok(ArmResponse::with_status(status, rendered))
    })
}

pub fn patch(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    sim.write(|w| {
        let key = id.to_ascii_lowercase();
        let Some(stored) = w.resources.get_mut(&key) else {
            return Err(not_found(req));
        };
        check_if_match(req, Some(&stored.etag))?;
        if let Some(tags) = req.body.get("tags") {
            stored.body["tags"] = tags.clone();
        }
        stored.etag = new_etag();
        Ok(ArmResponse::ok(render(&id, stored)))
    })
}

pub fn delete(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    sim.write(|w| {
        let key = id.to_ascii_lowercase();
        match w.resources.get(&key) {
            None => Ok(ArmResponse::empty(StatusCode::NO_CONTENT)),
            Some(stored) => {
                check_if_match(req, Some(&stored.etag))?;
                w.resources.remove(&key);
                Ok(ArmResponse::empty(StatusCode::OK))
            }
        }
    })
}

/// Lists guards in a resource group or subscription.
pub fn list(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let prefix = format!("{}/", req.path.scope.to_ascii_lowercase());
    let value: Vec<Value> = sim.read(|w| {
        w.resources
            .iter()
            .filter(|(id, r)| id.starts_with(&prefix) && r.body["type"] == GUARD_TYPE)
            .map(|(id, r)| render(&original_id(id, r), r))
            .collect()
    });
    page(sim, req, value)
}

/// The stored ID in its original casing.
fn original_id(key: &str, stored: &StoredResource) -> String {
    stored.body["id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| key.to_string())
}

/// `GET .../resourceGuards/{g}/{requestType}[/default]`: the request objects critical calls cite.
pub fn request_object(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let guard_id = req.path.resource_id_of(1);
    if sim.read(|w| w.resource(&guard_id).is_none()) {
        return Err(not_found(req));
    }
    let request_type = &req.path.types[1];
    let known = CriticalOperation::all()
        .flat_map(|op| op.azure_operations())
        .any(|a| a.request_type.is_some_and(|rt| rt.eq_ignore_ascii_case(request_type)));
    if !known {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!(
                "The resource type '{request_type}' could not be found in the namespace 'Microsoft.DataProtection'."
            ),
        ));
    }
    let object = |name: &str| {
        json!({
            "name": name,
            "type": format!("{GUARD_TYPE}/{request_type}"),
            "id": format!("{guard_id}/{request_type}/{name}"),
        })
    };
    match req.path.names.get(1) {
        Some(name) if name.eq_ignore_ascii_case("default") => Ok(ArmResponse::ok(object("default"))),
        Some(name) => Err(ArmError::not_found(
            &format!("{GUARD_TYPE}/{request_type}"),
            name,
            req.path.resource_group().unwrap_or_default(),
        )),
        None => Ok(ArmResponse::ok(json!({ "value": [object("default")] }))),
    }
}
