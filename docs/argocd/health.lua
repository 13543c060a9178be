-- Argo CD health of aimass.io Models and ModelDeployments, from their
-- standard conditions. Install it for both kinds in argocd-cm (see
-- docs/operations.md); TrainingJobs use training-job-health.lua.
local hs = { status = "Progressing", message = "Waiting for the aimass operator" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local ready, degraded
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Degraded" then degraded = c end
end
if ready == nil then
  return hs
end
-- A condition about an older generation says nothing about this one yet.
if ready.observedGeneration ~= nil and obj.metadata.generation ~= nil
    and ready.observedGeneration < obj.metadata.generation then
  return hs
end
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.reason .. ": " .. (degraded.message or "")
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
-- Not ready yet, and getting there on its own (a first training run, a
-- rollout, a canary analysis) ...
local progressing = {
  Pending = true, TrainingInProgress = true, NoReadyVersion = true,
  AliasUnresolved = true, RollingOut = true, CanaryAnalysis = true,
}
if progressing[ready.reason] then
  hs.message = ready.reason .. ": " .. (ready.message or "")
  return hs
end
-- ... or waiting for a person (InvalidSpec, ReferenceNotFound, ...).
hs.status = "Degraded"
hs.message = ready.reason .. ": " .. (ready.message or "")
return hs
