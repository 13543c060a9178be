-- Argo CD health of aimass.io TrainingJobs: a run is Healthy once it
-- succeeded, Degraded when it failed (with the operator's reason), and
-- Progressing before.
local hs = { status = "Progressing", message = "Waiting for the aimass operator" }
if obj.status == nil or obj.status.phase == nil then
  return hs
end
if obj.status.phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "version " .. tostring(obj.status.modelVersion or "?") .. " registered"
elseif obj.status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = (obj.status.reason or "Failed") .. ": " .. (obj.status.message or "")
else
  hs.message = obj.status.phase
end
return hs
