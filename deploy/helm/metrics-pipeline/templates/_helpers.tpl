{{/* Names and labels. */}}

{{- define "mp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every resource: the release name (or fullnameOverride), so that
the ingest Service of release "metrics-pipeline" is "metrics-pipeline-ingest".
*/}}
{{- define "mp.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of a component's resources: (dict "ctx" $ "component" "ingest"). */}}
{{- define "mp.resourceName" -}}
{{- printf "%s-%s" (include "mp.fullname" .ctx | trunc 52 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "mp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: (dict "ctx" $ "component" "ingest"); component may be empty. */}}
{{- define "mp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mp.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/* All labels: (dict "ctx" $ "component" "ingest"). */}}
{{- define "mp.labels" -}}
helm.sh/chart: {{ include "mp.chart" .ctx }}
{{ include "mp.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: metrics-pipeline
{{- end -}}

{{- define "mp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mp.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Values. */}}

{{/*
A scalar as text. Helm reads every number of a values file as float64, which
prints large integers as 1e+06; whole numbers are printed as integers.
*/}}
{{- define "mp.scalar" -}}
{{- if kindIs "float64" . -}}
{{- if eq (floor .) . -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}
{{- else if kindIs "invalid" . -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/* A value as a TOML value: strings quoted, numbers and booleans bare. */}}
{{- define "mp.tomlValue" -}}
{{- if kindIs "string" . -}}
{{- toJson . -}}
{{- else if kindIs "bool" . -}}
{{- ternary "true" "false" . -}}
{{- else if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- include "mp.scalar" . -}}
{{- else -}}
{{- fail (printf "cannot write %v (%s) as a TOML value" . (kindOf .)) -}}
{{- end -}}
{{- end -}}

{{/*
Environment entries from a name: value map, refusing the names the chart sets
itself: (dict "env" map "reserved" list "where" "ingest.env").
*/}}
{{- define "mp.envFromMap" -}}
{{- $reserved := .reserved -}}
{{- $where := .where -}}
{{- range $name, $value := .env }}
{{- if has $name $reserved }}
{{- fail (printf "%s.%s is set by the chart; use its structured value instead (see values.yaml)" $where $name) }}
{{- end }}
- name: {{ $name }}
  value: {{ include "mp.scalar" $value | quote }}
{{- end }}
{{- end -}}

{{/* Topics. */}}

{{/* The partitions of a topic by its key in topics.names. (dict "ctx" $ "topic" "samples") */}}
{{- define "mp.topicPartitions" -}}
{{- $topics := .ctx.Values.topics -}}
{{- $override := dig .topic nil ($topics.strimzi.partitions | default dict) -}}
{{- if and $topics.strimzi.enabled (not (kindIs "invalid" $override)) -}}
{{- include "mp.scalar" $override -}}
{{- else -}}
{{- include "mp.scalar" $topics.partitions -}}
{{- end -}}
{{- end -}}

{{/* CREATE_TOPICS: false whenever Strimzi manages the topics. */}}
{{- define "mp.createTopics" -}}
{{- if .Values.topics.strimzi.enabled -}}false{{- else -}}{{ ternary "true" "false" (.Values.topics.create | default false) }}{{- end -}}
{{- end -}}

{{/* Kafka client configuration (the TOML file with [kafka.properties]). */}}

{{- define "mp.kafkaConfig.enabled" -}}
{{- if or .Values.kafka.existingConfigSecret (not (empty .Values.kafka.properties)) -}}true{{- end -}}
{{- end -}}

{{- define "mp.kafkaConfig.secretName" -}}
{{- if .Values.kafka.existingConfigSecret -}}
{{- .Values.kafka.existingConfigSecret -}}
{{- else -}}
{{- printf "%s-kafka-config" (include "mp.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "mp.kafkaConfig.key" -}}
{{- if .Values.kafka.existingConfigSecret -}}{{ .Values.kafka.existingConfigSecretKey }}{{- else -}}config.toml{{- end -}}
{{- end -}}

{{- define "mp.kafkaConfig.path" -}}
/etc/metrics-pipeline/kafka/{{ include "mp.kafkaConfig.key" . }}
{{- end -}}

{{- define "mp.kafkaConfig.toml" -}}
# librdkafka properties of both services, rendered by the metrics-pipeline chart.
[kafka.properties]
{{- range $name, $value := .Values.kafka.properties }}
{{ toJson $name }} = {{ include "mp.scalar" $value | toJson }}
{{- end }}
{{- end -}}

{{/* Volumes and mounts shared by both services. */}}
{{- define "mp.sharedVolumes" -}}
- name: tmp
  emptyDir: {}
{{- if include "mp.kafkaConfig.enabled" . }}
- name: kafka-config
  secret:
    secretName: {{ include "mp.kafkaConfig.secretName" . }}
    items:
      - key: {{ include "mp.kafkaConfig.key" . }}
        path: {{ include "mp.kafkaConfig.key" . }}
{{- end }}
{{- range .Values.kafka.secretMounts }}
- name: secret-{{ .name | trunc 56 | trimSuffix "-" }}
  secret:
    secretName: {{ .name }}
{{- end }}
{{- end -}}

{{- define "mp.sharedVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if include "mp.kafkaConfig.enabled" . }}
- name: kafka-config
  mountPath: /etc/metrics-pipeline/kafka
  readOnly: true
{{- end }}
{{- range .Values.kafka.secretMounts }}
- name: secret-{{ .name | trunc 56 | trimSuffix "-" }}
  mountPath: /etc/metrics-pipeline/secrets/{{ .name }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Topology spread constraints with the component's labelSelector filled in: (dict "ctx" $ "component" "ingest" "constraints" list). */}}
{{- define "mp.topologySpread" -}}
{{- $ctx := .ctx -}}
{{- $component := .component -}}
{{- range .constraints }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "mp.selectorLabels" (dict "ctx" $ctx "component" $component) | fromYaml)) }}
{{- end }}
- {{ toYaml $c | nindent 2 | trim }}
{{- end }}
{{- end -}}

{{/* The partitions of metrics.samples, as an int. */}}
{{- define "mp.samplesPartitions" -}}
{{- include "mp.topicPartitions" (dict "ctx" . "topic" "samples") -}}
{{- end -}}

{{/* The API keys file. */}}

{{- define "mp.apiKeys.secretName" -}}
{{- if .Values.ingest.apiKeys.existingSecret -}}
{{- .Values.ingest.apiKeys.existingSecret -}}
{{- else -}}
{{- printf "%s-api-keys" (include "mp.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "mp.apiKeys.key" -}}
{{- if .Values.ingest.apiKeys.existingSecret -}}{{ .Values.ingest.apiKeys.existingSecretKey }}{{- else -}}api-keys.toml{{- end -}}
{{- end -}}

{{- define "mp.apiKeys.toml" -}}
{{- $allowed := list "tenant" "key" "sha256" "samples_per_second" "burst_samples" "max_labels_per_series" "max_label_name_length" "max_label_value_length" "shard_size" -}}
{{- if .Values.ingest.apiKeys.toml -}}
{{- .Values.ingest.apiKeys.toml -}}
{{- else -}}
# API keys of the ingest service, rendered by the metrics-pipeline chart.
{{- if not .Values.ingest.apiKeys.keys }}
# No keys: every write is answered 401. Set ingest.apiKeys.
{{- end }}
{{- range $i, $entry := .Values.ingest.apiKeys.keys }}
{{- if not $entry.tenant }}
{{- fail (printf "ingest.apiKeys.keys[%d] needs a tenant" $i) }}
{{- end }}
{{- if eq (len (pick $entry "key" "sha256")) 1 | not }}
{{- fail (printf "ingest.apiKeys.keys[%d] (tenant %s) needs exactly one of key or sha256" $i $entry.tenant) }}
{{- end }}

[[keys]]
{{- range $name, $value := $entry }}
{{- if not (has $name $allowed) }}
{{- fail (printf "ingest.apiKeys.keys[%d]: unknown field %q (allowed: %s)" $i $name (join ", " $allowed)) }}
{{- end }}
{{ $name }} = {{ include "mp.tomlValue" $value }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}
