{{/* Chart name, at most 63 characters. */}}
{{- define "spo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: <release>-<chart>, or the release name when it already holds the chart name. */}}
{{- define "spo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "spo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the operator pods (never change them: a Deployment's selector is immutable). */}}
{{- define "spo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The selector labels as k=v,k2=v2 (SPO_OPERATOR_POD_LABELS). */}}
{{- define "spo.selectorLabelsCsv" -}}
{{- $pairs := list -}}
{{- range $k, $v := (include "spo.selectorLabels" . | fromYaml) -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* Labels on every object of the chart. */}}
{{- define "spo.labels" -}}
{{ include "spo.selectorLabels" . }}
helm.sh/chart: {{ include "spo.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: session-pool-operator
{{- end -}}

{{- define "spo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "spo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "spo.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "spo.leaseName" -}}
{{- default (include "spo.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{- define "spo.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace -}}
{{- end -}}

{{- define "spo.metricsServiceName" -}}
{{- printf "%s-metrics" (include "spo.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Checks of combinations the schema cannot express. */}}
{{- define "spo.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: two active operators would fight over every SessionPool" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.service.enabled) -}}
{{- fail "serviceMonitor.enabled=true needs metrics.service.enabled=true (the ServiceMonitor scrapes that Service)" -}}
{{- end -}}
{{- end -}}

{{/* Labels on the CRDs (not selector labels of the operator pods). */}}
{{- define "spo.crdLabels" -}}
app.kubernetes.io/name: {{ include "spo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: crds
helm.sh/chart: {{ include "spo.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: session-pool-operator
{{- end -}}

{{/*
The operator's Secret rules: in the ClusterRole when it watches every namespace, else in a Role
in watchNamespace. get: the Redis credentials and TLS Secrets a SessionPool names, and each pool's
`<pool>-admin-token`; never list or watch (Kubernetes RBAC cannot pin get to names pools choose
later). create: the admin token Secret, once (create cannot be pinned by resourceNames: the name
is not known at authorization time); never update, patch or delete (the Secret is immutable and
garbage-collected with its pool).
*/}}
{{- define "spo.secretRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
{{- end }}
