{{/* The release's full name, cut to 63 characters. */}}
{{- define "aimass.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object of the release carries. */}}
{{- define "aimass.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aimass
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "aimass.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "aimass.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aimass.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "aimass.image" -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) -}}
{{- end -}}

{{/*
What the operator does in the namespaces it serves; nothing more. Shared by
the ClusterRole (cluster-wide mode) and the Role (namespaced mode).
*/}}
{{- define "aimass.operatorRules" -}}
# The aimass.io kinds: read and follow them, write their status, set the
# Model finalizer (only with retention.deleteArtifacts), and create the
# TrainingJobs of scheduled retraining.
- apiGroups: [aimass.io]
  resources: [models, trainingjobs, modeldeployments]
  verbs: [get, list, watch, patch, update]
- apiGroups: [aimass.io]
  resources: [trainingjobs]
  verbs: [create]
- apiGroups: [aimass.io]
  resources: [models/status, trainingjobs/status, modeldeployments/status]
  verbs: [get, patch, update]
# ApiClients: resolve their key Secrets (read by name below) into status.
- apiGroups: [aimass.io]
  resources: [apiclients]
  verbs: [get, list, watch]
- apiGroups: [aimass.io]
  resources: [apiclients/status]
  verbs: [get, patch, update]
# ModelApprovals: count them for promotions and say so in their status.
- apiGroups: [aimass.io]
  resources: [modelapprovals]
  verbs: [get, list, watch]
- apiGroups: [aimass.io]
  resources: [modelapprovals/status]
  verbs: [get, patch, update]
# ScoringJobs: run them and write their report into status; create the
# evaluations and backtests of Models.
- apiGroups: [aimass.io]
  resources: [scoringjobs]
  verbs: [get, list, watch, create]
- apiGroups: [aimass.io]
  resources: [scoringjobs/status]
  verbs: [get, patch, update]
- apiGroups: [aimass.io]
  resources: [models/finalizers, trainingjobs/finalizers, modeldeployments/finalizers, scoringjobs/finalizers]
  verbs: [update]
# Training runs, scoring runs and the Jobs that validate artifacts in
# tenants' namespaces.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# Inference servers (server-side apply) and their Services; headless
# Services of distributed training runs.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# The audit key service follows a server pod to its ModelDeployment
# through its ReplicaSet.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
# The NetworkPolicy that keeps each ModelDeployment's admin port to the
# operator and the metrics scrapers.
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch, delete]
# Replicas: scrape and judge them, mark and cost the one being migrated,
# follow trainers' output, check PodDisruptionBudgets with dry-run evictions.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [pods/eviction]
  verbs: [create]
# Storage credentials named by Models and ModelDeployments and the key
# Secrets named by ApiClients (get, by name: never list). The audit keys
# live in the operator's own namespace (its Role there).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# The ServiceAccount of each Enforced ModelDeployment's servers, and the
# Role and RoleBinding that let them read the namespace's ApiClients.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create, patch]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, create, patch, delete]
# Events about the objects above.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "aimass.inferenceAuthRules" -}}
# Enforced inference servers review their callers' tokens and permissions:
# the operator binds each one's ServiceAccount to this ClusterRole (and may
# bind no other), and removes the binding with the ModelDeployment.
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterrolebindings]
  verbs: [get, list, create, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  resourceNames: [{{ .Values.inferenceServer.authClusterRole | quote }}]
  verbs: [bind]
# The audit key service reviews the pod-bound tokens servers present.
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
{{- end -}}
