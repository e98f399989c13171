-- Argo CD health of a mua.dev VaultProtection, from the operator's kstatus conditions (Ready, Reconciling,
-- Stalled) and status.observedGeneration. Reasons: src/controller/reason.rs; mapping: docs/src/guides/argocd.md.
-- Uses only what Argo CD gives a health script without open libraries (no string library).
-- A VaultProtection waiting for an approved CriticalOperationRequest (ElevationRequired) is Suspended.
local hs = {}

-- Reasons the operator moves on from by itself (retries, waiting for another object).
local transient = {
  GuardNotReady = true, AzureThrottled = true, AzureUnavailable = true, AzureConflict = true,
  KubernetesError = true,
}
-- Reasons that wait for people: an approval, or an approved elevation.
local waitsForPeople = { ElevationRequired = true, ApprovalPending = true, PendingApprovalInAzure = true }

local function condition(conditions, type)
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c)
  local reason = c.reason or c.type
  if c.message ~= nil and c.message ~= "" then
    return reason .. ": " .. c.message
  end
  return reason
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
  return hs
end

local ready = condition(status.conditions, "Ready")
local reconciling = condition(status.conditions, "Reconciling")
local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
-- Waiting: Reconciling=True (or, without it, Ready=False) says for what.
local waiting = nil
if reconciling ~= nil and reconciling.status == "True" then
  waiting = reconciling
elseif ready ~= nil and ready.status == "False" then
  waiting = ready
end
if waiting ~= nil then
  if waitsForPeople[waiting.reason] then
    hs.status = "Suspended"
  elseif waiting == reconciling or transient[waiting.reason] then
    hs.status = "Progressing"
  else
    -- Ready=False for a reason only a person can fix (GuardNotFound, RegionMismatch, ...).
    hs.status = "Degraded"
  end
  hs.message = describe(waiting)
  return hs
end
hs.status = "Progressing"
hs.message = "Waiting for the operator to reconcile"
return hs
