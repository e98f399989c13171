-- Argo CD health of a mua.dev CriticalOperationRequest, from status.phase (Pending -> Approved | Denied ->
-- Active -> Completed | Expired | Revoked | Failed) and the operator's conditions. Reasons:
-- src/controller/reason.rs; mapping and why: docs/src/guides/argocd.md. Healthy means "the elevation asked for was
-- granted": a later sync wave (the VaultProtection change it unlocks) may go on. A request that ended
-- without one (denied, or ended before it was granted) or failed is Degraded: the sync stops there.
-- Uses only what Argo CD gives a health script without open libraries (no string library).
local hs = {}

-- Reasons that wait for people: approvers in Kubernetes, or PIM's approvers in Azure.
local waitsForPeople = { ApprovalPending = true, PendingApprovalInAzure = true }

local function condition(conditions, type)
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local reason = c.reason or c.type
  if c.message ~= nil and c.message ~= "" then
    return reason .. ": " .. c.message
  end
  return reason
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to take up the request"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
  return hs
end

local conditions = status.conditions or {}
local ready = condition(conditions, "Ready")
local reconciling = condition(conditions, "Reconciling")
local stalled = condition(conditions, "Stalled")
local phase = status.phase
local summary = describe(ready, phase)

if phase == "Active" or phase == "Completed" then
  hs.status = "Healthy"
elseif phase == "Expired" or phase == "Revoked" then
  -- The elevation ended, as every elevation must: fine once it was granted; without a grant the
  -- request never got what it asked for (revoked while pending, or PIM's approvers never answered).
  if status.grantedAt ~= nil then
    hs.status = "Healthy"
  else
    hs.status = "Degraded"
  end
elseif phase == "Denied" or phase == "Failed" then
  hs.status = "Degraded"
elseif stalled ~= nil and stalled.status == "True" then
  -- Pending or Approved, and only a person can move it on (AdmissionPoliciesMissing, ...).
  hs.status = "Degraded"
  summary = describe(stalled, phase)
elseif phase == "Pending" then
  local waiting = ready
  if reconciling ~= nil and reconciling.status == "True" then
    waiting = reconciling
  end
  if waiting ~= nil and waitsForPeople[waiting.reason] then
    hs.status = "Suspended"
  else
    -- AnotherElevationActive, retries, or not yet assessed: moves on by itself.
    hs.status = "Progressing"
  end
  summary = describe(waiting, phase)
else
  -- Approved: the elevation is being granted. An unknown phase: wait for the operator.
  hs.status = "Progressing"
end
hs.message = summary
return hs
