{{/* The chart's name, or nameOverride. */}}
{{- define "sluicegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's objects (at most 63 characters, a DNS label). */}}
{{- define "sluicegate.fullname" -}}
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

{{- define "sluicegate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sluicegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluicegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sluicegate.labels" -}}
helm.sh/chart: {{ include "sluicegate.chart" . }}
{{ include "sluicegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sluicegate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sluicegate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sluicegate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where the ConfigMap's file is mounted, and its name (SLUICEGATE_CONFIG). */}}
{{- define "sluicegate.configDir" -}}/etc/sluicegate{{- end }}
{{- define "sluicegate.configFile" -}}sluicegate.yaml{{- end }}

{{/*
SIGTERM comes after the preStop sleep; then the ready grace, then the drain. Kubernetes kills the
container terminationGracePeriodSeconds after the deletion began, so it must cover all three.
*/}}
{{- define "sluicegate.shutdownSeconds" -}}
{{- $s := .Values.shutdown }}
{{- add $s.preStopSleepSeconds $s.readyGraceSeconds $s.drainSeconds }}
{{- end }}

{{- define "sluicegate.terminationGracePeriodSeconds" -}}
{{- $s := .Values.shutdown }}
{{- $needed := include "sluicegate.shutdownSeconds" . | int }}
{{- if kindIs "invalid" $s.terminationGracePeriodSeconds }}
{{- add $needed $s.extraGraceSeconds }}
{{- else if le (int $s.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + readyGraceSeconds + drainSeconds (%d)" (int $s.terminationGracePeriodSeconds) $needed) }}
{{- else }}
{{- $s.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
The variables that come from Secrets, by name: {NAME: {existingSecret, key}}. The names are the
settings they set (control.master_key, spend.redis_url, …; the one Redis of secrets.redisUrl holds
spend, rate limits and loop state), and a provider's key variable is the
one its api_key_env names in the config.
*/}}
{{- define "sluicegate.secretVariables" -}}
{{- $s := .Values.secrets }}
{{- $vars := dict
  "SLUICEGATE_CONTROL__MASTER_KEY" $s.masterKey
  "SLUICEGATE_CONTROL__DATABASE_URL" $s.databaseUrl
  "SLUICEGATE_SPEND__REDIS_URL" $s.redisUrl
  "SLUICEGATE_LIMITS__REDIS_URL" $s.redisUrl
  "SLUICEGATE_LOOPS__REDIS_URL" $s.redisUrl
  "SLUICEGATE_REDACTION__PSEUDONYM_SECRET" $s.pseudonymSecret
  "SLUICEGATE_KEYS" $s.gatewayKeys
  "SLUICEGATE_METRICS__TOKEN" $s.metricsToken
  "SLUICEGATE_CONTROL__AUDIT_KEY" $s.auditKey
  "SLUICEGATE_CONTROL__AUDIT_RETIRED_KEYS" $s.auditRetiredKeys
  "SLUICEGATE_CONTROL__MASTER_RETIRED_KEYS" $s.masterRetiredKeys
  "SLUICEGATE_CONTROL__OIDC__CLIENT_SECRET" $s.oidcClientSecret }}
{{- range $s.providers }}
{{- if hasKey $vars .env }}
{{- fail (printf "secrets.providers: %s is set twice" .env) }}
{{- end }}
{{- $_ := set $vars .env (dict "existingSecret" .existingSecret "key" .key) }}
{{- end }}
{{- toYaml $vars }}
{{- end }}

{{/* Labels for the pod template and the test pod's selector. */}}
{{- define "sluicegate.podLabels" -}}
{{ include "sluicegate.labels" . }}
{{- with .Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Settings that cannot work in a pod: refused at render time, with the fix. */}}
{{- define "sluicegate.validate" -}}
{{- $control := .Values.config.control | default dict }}
{{- if $control.enabled }}
{{- if not (or .Values.secrets.databaseUrl.existingSecret $control.database_url) }}
{{- fail "config.control.enabled needs a database: set secrets.databaseUrl (PostgreSQL); the default SQLite file would be written to the read-only root filesystem" }}
{{- end }}
{{- if and .Values.secrets.databaseUrl.existingSecret (not (or .Values.secrets.masterKey.existingSecret $control.master_key_file)) }}
{{- fail "config.control.enabled with PostgreSQL needs the master encryption key: set secrets.masterKey" }}
{{- end }}
{{- end }}
{{- if (.Values.config.control).master_key }}
{{- fail "config.control.master_key would put the master key in a ConfigMap: use secrets.masterKey" }}
{{- end }}
{{- range $name, $provider := .Values.config.providers }}
{{- if $provider.api_key }}
{{- fail (printf "config.providers.%s.api_key would put the key in a ConfigMap: name a variable with api_key_env and inject it with secrets.providers" $name) }}
{{- end }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (eq (toString (.Values.config.metrics).enabled) "false") }}
{{- fail "serviceMonitor.enabled scrapes /metrics, which config.metrics.enabled: false turns off" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.secrets.metricsToken.existingSecret) }}
{{- fail "serviceMonitor.enabled needs secrets.metricsToken: /metrics answers 401 without its bearer token" }}
{{- end }}
{{- if (.Values.config.metrics).token }}
{{- fail "config.metrics.token would put the token in a ConfigMap: use secrets.metricsToken" }}
{{- end }}
{{- if (.Values.config.redaction).pseudonym_secret }}
{{- fail "config.redaction.pseudonym_secret would put the secret in a ConfigMap: use secrets.pseudonymSecret" }}
{{- end }}
{{- if $control.audit_key }}
{{- fail "config.control.audit_key would put the audit key in a ConfigMap: use secrets.auditKey" }}
{{- end }}
{{- if $control.audit_retired_keys }}
{{- fail "config.control.audit_retired_keys would put audit keys in a ConfigMap: use secrets.auditRetiredKeys (a JSON list)" }}
{{- end }}
{{- if $control.master_retired_keys }}
{{- fail "config.control.master_retired_keys would put master keys in a ConfigMap: use secrets.masterRetiredKeys (a JSON list)" }}
{{- end }}
{{- if ($control.oidc).client_secret }}
{{- fail "config.control.oidc.client_secret would put the client secret in a ConfigMap: use secrets.oidcClientSecret" }}
{{- end }}
{{- if and .Values.secrets.auditKey.existingSecret $control.audit_key_file }}
{{- fail "secrets.auditKey and config.control.audit_key_file both set the audit key: keep one" }}
{{- end }}
{{- if and .Values.containerAdminPort (eq (int .Values.containerAdminPort) (int .Values.containerPort)) }}
{{- fail "containerAdminPort must differ from containerPort (or be null: everything on containerPort)" }}
{{- end }}
{{- include "sluicegate.validateSharedCaps" . }}
{{- include "sluicegate.validateSharedLimits" . }}
{{- include "sluicegate.validateAuditAnchors" . }}
{{- end }}

{{/* The claim the audit anchors go on: the one named, or the chart's. */}}
{{- define "sluicegate.auditAnchorsClaim" -}}
{{- .Values.auditAnchors.persistence.existingClaim | default (printf "%s-audit-anchors" (include "sluicegate.fullname" .)) }}
{{- end }}

{{/*
Anchors belong to the control plane, go in one place, and sit on a claim every pod can mount: the
chart's claim is mounted by every pod of the Deployment.
*/}}
{{- define "sluicegate.validateAuditAnchors" -}}
{{- $anchors := .Values.auditAnchors }}
{{- $control := .Values.config.control | default dict }}
{{- if $anchors.enabled }}
{{- if not $control.enabled }}
{{- fail "auditAnchors.enabled pins the control plane's audit log: set config.control.enabled" }}
{{- end }}
{{- if $control.audit_anchor_file }}
{{- fail "config.control.audit_anchor_file and auditAnchors.enabled both say where anchors go: keep auditAnchors (each pod gets its own file on the claim)" }}
{{- end }}
{{- $pods := int (ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled) }}
{{- if and (not $anchors.persistence.existingClaim) (gt $pods 1) (not (has "ReadWriteMany" $anchors.persistence.accessModes)) }}
{{- fail (printf "auditAnchors.persistence.accessModes %v with %d pod(s): every pod mounts the chart's claim, so it needs ReadWriteMany (or name an existingClaim every pod can mount)" $anchors.persistence.accessModes $pods) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Caps hold across processes only in a store they share. The local backend counts in each worker
process's memory, so N pods or workers would let every cap through N times; and a Redis on the
pod's own loopback (a sidecar) is one per pod.
*/}}
{{- define "sluicegate.validateSharedCaps" -}}
{{- $spend := .Values.config.spend | default dict }}
{{- $control := .Values.config.control | default dict }}
{{- $capped := and (ne (toString $spend.enabled) "false") (or $spend.caps $control.enabled) }}
{{- $pods := int (ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled) }}
{{- $workers := int ((.Values.config.server).workers | default 1) }}
{{- if and $capped (or (gt $pods 1) (gt $workers 1)) }}
{{- $where := printf "%d pod(s) (replicaCount, or autoscaling.maxReplicas while autoscaling.enabled) of %d worker(s) (config.server.workers)" $pods $workers }}
{{- if eq ($spend.backend | default "local") "local" }}
{{- fail (printf "spend caps (config.spend.caps, or config.control.enabled) with config.spend.backend \"local\" and %s: each process would enforce every cap on its own and let it through that many times. Set config.spend.backend: redis and secrets.redisUrl (a Redis every pod reaches), or run one pod of one worker (replicaCount: 1, autoscaling.enabled: false, config.server.workers: 1)" $where) }}
{{- end }}
{{- $fromEnv := false }}
{{- range .Values.extraEnv }}
{{- if eq .name "SLUICEGATE_SPEND__REDIS_URL" }}
{{- $fromEnv = true }}
{{- end }}
{{- end }}
{{- $overridden := or .Values.secrets.redisUrl.existingSecret $fromEnv }}
{{- if not (or $overridden $spend.redis_url) }}
{{- fail (printf "config.spend.backend: redis with %s needs a Redis that every pod shares: set secrets.redisUrl (the default redis://127.0.0.1:6379/0 is each pod's own loopback)" $where) }}
{{- end }}
{{- if and (not $overridden) $spend.redis_url (regexMatch "^(unix://|rediss?(\\+cluster)?://([^@/]*@)?(localhost|127\\.|\\[::1\\]))" $spend.redis_url) }}
{{- fail "config.spend.redis_url points at the pod's own loopback or a local socket, which is one Redis per pod: name a Redis every pod shares (secrets.redisUrl)" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Rate limits, as caps: the local backend counts in each worker's memory, so N pods or workers would
admit every limit N times. (secrets.redisUrl sets limits.redis_url too.)
*/}}
{{- define "sluicegate.validateSharedLimits" -}}
{{- $limits := .Values.config.limits | default dict }}
{{- $control := .Values.config.control | default dict }}
{{- $limited := and (ne (toString $limits.enabled) "false") (or $limits.rules $control.enabled) }}
{{- $pods := int (ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled) }}
{{- $workers := int ((.Values.config.server).workers | default 1) }}
{{- if and $limited (or (gt $pods 1) (gt $workers 1)) (eq ($limits.backend | default "local") "local") }}
{{- fail (printf "rate limits (config.limits.rules, or config.control.enabled) with config.limits.backend \"local\" and %d pod(s) of %d worker(s): each process would count on its own and admit every limit that many times. Set config.limits.backend: redis (secrets.redisUrl is its Redis too), or run one pod of one worker" $pods $workers) }}
{{- end }}
{{- end }}

{{/* "true" when the migration Job runs (the control plane is on and migrations.job.enabled), else "". */}}
{{- define "sluicegate.migrationJob" -}}
{{- if and ((.Values.config.control | default dict).enabled) .Values.migrations.job.enabled }}true{{- end }}
{{- end }}

{{/*
The migration Job's labels: not the gateway's selector labels (another app.kubernetes.io/name), so
that no Service, PodDisruptionBudget or spread constraint of the gateway ever counts its pod.
*/}}
{{- define "sluicegate.migrationLabels" -}}
helm.sh/chart: {{ include "sluicegate.chart" . }}
app.kubernetes.io/name: {{ printf "%s-migrations" (include "sluicegate.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: migrations
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
A probe from its values: every field of a Kubernetes Probe is passed through (timings, a handler,
terminationGracePeriodSeconds); without a handler of its own (httpGet, tcpSocket, exec, grpc) it
asks `path` on the http port. `enabled` is the chart's, not the probe's.
*/}}
{{- define "sluicegate.probe" -}}
{{- $probe := omit .probe "enabled" }}
{{- if not (or $probe.httpGet $probe.tcpSocket $probe.exec $probe.grpc) }}
{{- $_ := set $probe "httpGet" (dict "path" .path "port" "http") }}
{{- end }}
{{- toYaml $probe }}
{{- end }}
