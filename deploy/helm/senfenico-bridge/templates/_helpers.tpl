{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "senfenico-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name of the release's objects. */}}
{{- define "senfenico-bridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "senfenico-bridge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "senfenico-bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "senfenico-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "senfenico-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "senfenico-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "senfenico-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The sinks SINKS names, as a list of trimmed lower-case names. */}}
{{- define "senfenico-bridge.sinkList" -}}
{{- $out := list }}
{{- range (splitList "," .Values.sinks) }}
{{- $out = append $out (trim . | lower) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
"true" when the pod runs the embedded NATS server: SINKS names nats and no
external URL is given.
*/}}
{{- define "senfenico-bridge.embedded" -}}
{{- $sinks := include "senfenico-bridge.sinkList" . | fromJsonArray }}
{{- if and (has "nats" $sinks) (not .Values.nats.url) (not .Values.nats.urlSecret.name) }}true{{ end }}
{{- end }}

{{/* Name of the Secret that holds SENFENICO_WEBHOOK_KEYS. */}}
{{- define "senfenico-bridge.webhookSecretName" -}}
{{- if .Values.webhookKeys.existingSecret }}
{{- .Values.webhookKeys.existingSecret }}
{{- else }}
{{- include "senfenico-bridge.fullname" . }}-webhook-keys
{{- end }}
{{- end }}

{{/*
Refuses combinations of values that would deploy something unsafe or
broken; rendered by the Deployment so that every install and template
passes through it. values.schema.json checks each value on its own (names,
types, ranges), so a misspelt key fails too.
*/}}
{{- define "senfenico-bridge.validate" -}}
{{- $sinks := include "senfenico-bridge.sinkList" . | fromJsonArray }}
{{- if and (not .Values.webhookKeys.existingSecret) (not .Values.webhookKeys.keys) }}
{{- fail "webhookKeys: set existingSecret (a Secret you manage) or keys (the chart creates the Secret)" }}
{{- end }}
{{- if and .Values.webhookKeys.existingSecret .Values.webhookKeys.keys }}
{{- fail "webhookKeys: set existingSecret or keys, not both" }}
{{- end }}
{{- if include "senfenico-bridge.embedded" . }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail (printf "replicaCount %d with the embedded NATS server: each pod would run its own broker with its own store, so a resend landing on another pod would be stored twice and a pod's loss would lose its events. Set nats.url to a NATS cluster (or use kafka), or keep replicaCount at 1" (int .Values.replicaCount)) }}
{{- end }}
{{- if gt (int .Values.nats.streamReplicas) 1 }}
{{- fail "nats.streamReplicas > 1 needs a NATS cluster: the embedded server is a single node" }}
{{- end }}
{{- end }}
{{- if has "kafka" $sinks }}
{{- if not .Values.kafka.brokers }}
{{- fail "kafka.brokers: required when sinks names kafka" }}
{{- end }}
{{- if gt (int .Values.kafka.topicMinISR) (int .Values.kafka.topicReplication) }}
{{- fail "kafka.topicMinISR exceeds kafka.topicReplication: no record could be acknowledged" }}
{{- end }}
{{- end }}
{{- if and .Values.nats.url .Values.nats.urlSecret.name }}
{{- fail "nats: set url or urlSecret.name, not both" }}
{{- end }}
{{- end }}
