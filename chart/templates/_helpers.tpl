{{/*
Every name and label the chart uses, in one place: no template builds a name itself.

Names are lowercased (an alias such as `prePuller` becomes the chart name), underscores become
dashes, and each name is cut to its kind's limit by truncating the base, never the suffix, so the
names stay distinct: 63 (Helm's convention, and a label value's limit) for most, 57 for the hook
Job (the Job controller names its pods `<job>-<5 random>` and labels them with the Job name).
*/}}

{{- define "image-awaiter.name" -}}
{{- default .Chart.Name .Values.nameOverride | lower | replace "_" "-" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "image-awaiter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | lower | replace "_" "-" | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "image-awaiter.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | lower | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | lower | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* `<base>-<suffix>` within `max` characters (dict "base" "suffix" "max"). A base too long is
     cut and ends in 6 characters of its hash, so two long bases that share a beginning (two
     releases in one long namespace) still give two names. */}}
{{- define "image-awaiter.suffixed" -}}
{{- $room := sub (int .max) (add1 (len .suffix)) | int }}
{{- $base := .base }}
{{- if gt (len $base) $room }}
{{- $base = printf "%s-%s" ($base | trunc (sub $room 7 | int) | trimSuffix "-" | trimSuffix ".") (sha256sum .base | trunc 6) }}
{{- end }}
{{- printf "%s-%s" $base .suffix }}
{{- end }}

{{- define "image-awaiter.hookJobName" -}}
{{- include "image-awaiter.suffixed" (dict "base" (include "image-awaiter.fullname" .) "suffix" "hook" "max" 57) }}
{{- end }}

{{- define "image-awaiter.specConfigMapName" -}}
{{- include "image-awaiter.suffixed" (dict "base" (include "image-awaiter.fullname" .) "suffix" "spec" "max" 63) }}
{{- end }}

{{/* The Role and its RoleBinding share the release's full name. */}}
{{- define "image-awaiter.roleName" -}}
{{- include "image-awaiter.fullname" . }}
{{- end }}

{{/* Cluster-scoped, so the namespace is part of it: two releases of the same name in two
     namespaces must not share (and on uninstall delete) one ClusterRole. Its binding shares it. */}}
{{- define "image-awaiter.clusterRoleName" -}}
{{- $base := printf "%s-%s" .Release.Namespace (include "image-awaiter.fullname" .) }}
{{- include "image-awaiter.suffixed" (dict "base" $base "suffix" "nodes" "max" 63) }}
{{- end }}

{{- define "image-awaiter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "image-awaiter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The DaemonSet in the spec ConfigMap; the awaiter renames it per run, within 52 characters. */}}
{{- define "image-awaiter.hookPullerName" -}}
{{- include "image-awaiter.suffixed" (dict "base" (include "image-awaiter.fullname" .) "suffix" "hook-puller" "max" 63) }}
{{- end }}

{{- define "image-awaiter.continuousName" -}}
{{- include "image-awaiter.suffixed" (dict "base" (include "image-awaiter.fullname" .) "suffix" "continuous-puller" "max" 63) }}
{{- end }}

{{/* The node gate (gate.enabled): its Deployment, ServiceAccount, Roles and bindings share it. */}}
{{- define "image-awaiter.gateName" -}}
{{- include "image-awaiter.suffixed" (dict "base" (include "image-awaiter.fullname" .) "suffix" "gate" "max" 63) }}
{{- end }}

{{/* Cluster-scoped, like clusterRoleName: nodes get/list/watch/patch and nodes/status patch. */}}
{{- define "image-awaiter.gateClusterRoleName" -}}
{{- $base := printf "%s-%s" .Release.Namespace (include "image-awaiter.fullname" .) }}
{{- include "image-awaiter.suffixed" (dict "base" $base "suffix" "gate-nodes" "max" 63) }}
{{- end }}

{{/* The Role in `default`, where node Events live: named after the release's namespace too. */}}
{{- define "image-awaiter.gateEventsRoleName" -}}
{{- $base := printf "%s-%s" .Release.Namespace (include "image-awaiter.fullname" .) }}
{{- include "image-awaiter.suffixed" (dict "base" $base "suffix" "gate-node-events" "max" 63) }}
{{- end }}

{{/* The gate's DaemonSet specs (one per pull group); the gate adds `-gate` to each name. */}}
{{- define "image-awaiter.gateSpecConfigMapName" -}}
{{- include "image-awaiter.suffixed" (dict "base" (include "image-awaiter.fullname" .) "suffix" "gate-spec" "max" 63) }}
{{- end }}

{{/* A puller variant's DaemonSet name (dict "root" "component" "group"). The default group keeps
     the names above; another group's adds its suffix, within 44 characters for the hook's (the
     awaiter keeps that much of a name before its run id, so the groups' names stay distinct). */}}
{{- define "image-awaiter.pullerName" -}}
{{- $suffix := (.group | default dict).suffix | default "" }}
{{- if eq .component "gate-puller" }}
{{- include "image-awaiter.suffixed" (dict "base" (include "image-awaiter.fullname" .root) "suffix" (trimSuffix "-" (printf "puller-%s" $suffix)) "max" 44) }}
{{- else if and (eq .component "hook-puller") (not $suffix) }}
{{- include "image-awaiter.hookPullerName" .root }}
{{- else if eq .component "hook-puller" }}
{{- include "image-awaiter.suffixed" (dict "base" (include "image-awaiter.fullname" .root) "suffix" (printf "hook-puller-%s" $suffix) "max" 44) }}
{{- else if not $suffix }}
{{- include "image-awaiter.continuousName" .root }}
{{- else }}
{{- include "image-awaiter.suffixed" (dict "base" (include "image-awaiter.fullname" .root) "suffix" (printf "continuous-puller-%s" $suffix) "max" 63) }}
{{- end }}
{{- end }}

{{/* The registry Secret the chart creates for a puller variant (dict "root" "component"): the
     hook's is a hook itself, so it exists before the hook Job even on the first install; the
     continuous DaemonSet's is a normal release resource. */}}
{{- define "image-awaiter.pullSecretName" -}}
{{- $suffix := ternary "hook-pull-secret" "pull-secret" (eq .component "hook-puller") }}
{{- include "image-awaiter.suffixed" (dict "base" (include "image-awaiter.fullname" .root) "suffix" $suffix "max" 63) }}
{{- end }}

{{- define "image-awaiter.priorityClassName" -}}
{{- if .Values.puller.priorityClass.create }}
{{- default (include "image-awaiter.suffixed" (dict "base" (include "image-awaiter.fullname" .) "suffix" "puller" "max" 63)) .Values.puller.priorityClass.name }}
{{- else }}
{{- .Values.puller.priorityClass.name }}
{{- end }}
{{- end }}

{{/* Labels that select one component's pods (dict "root" "component" "group"); also in
     `labels`. A pull group other than the default adds its suffix, so that the DaemonSets of
     two groups never select each other's pods. */}}
{{- define "image-awaiter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "image-awaiter.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with (.group | default dict).suffix }}
image-awaiter.io/pull-group: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Every object's labels (dict "root" "component"; component may be empty). */}}
{{- define "image-awaiter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "image-awaiter.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* A pod template's metadata (dict "root" "component" "labels" "annotations"): the selector
     labels win over extra labels of the same key, so a value can never break the selector. */}}
{{- define "image-awaiter.podMetadata" -}}
{{- $selector := include "image-awaiter.selectorLabels" . | fromYaml -}}
labels:
  {{- merge $selector (.labels | default dict) | toYaml | nindent 2 }}
{{- with .annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "image-awaiter.image" -}}
{{- printf "%s:%s" .Values.awaiter.image.repository (default .Chart.AppVersion .Values.awaiter.image.tag) }}
{{- end }}

{{- define "image-awaiter.helperImage" -}}
{{- default (include "image-awaiter.image" .) .Values.puller.helperImage }}
{{- end }}

{{/* Seconds in a duration as the awaiter reads it (`90`, `90s`, `500ms`, `4m`, `1h30m`, `1.5h`),
     rounded up: the template twin of image_awaiter.core.durations.parse_duration. */}}
{{- define "image-awaiter.durationSeconds" -}}
{{- $text := . | toString | lower | trim }}
{{- $total := 0.0 }}
{{- if regexMatch "^[0-9]+(\\.[0-9]+)?$" $text }}
{{- $total = float64 $text }}
{{- else }}
{{- $units := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)" $text -1 }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $unit := trimPrefix $number . }}
{{- $total = addf $total (mulf (float64 $number) (get $units $unit)) }}
{{- end }}
{{- end }}
{{- ceil $total | int }}
{{- end }}

{{/* The hook Job's activeDeadlineSeconds: the awaiter's timeout plus a margin for its cleanup
     (deleting the DaemonSet, writing the report) when not given; a given value below the timeout
     would kill the awaiter before it can say why, so it fails the render. */}}
{{- define "image-awaiter.activeDeadlineSeconds" -}}
{{- $timeout := include "image-awaiter.durationSeconds" .Values.awaiter.timeout | int }}
{{- with .Values.job.activeDeadlineSeconds }}
{{- if le (int .) $timeout }}
{{- fail (printf "job.activeDeadlineSeconds (%d) must be above awaiter.timeout (%s = %ds), or left empty to derive it" (int .) $.Values.awaiter.timeout $timeout) }}
{{- end }}
{{- int . }}
{{- else }}
{{- add $timeout 45 }}
{{- end }}
{{- end }}

{{/* Hook annotations: resources the Job needs exist before it (lower weight) on first install. */}}
{{- define "image-awaiter.hookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: {{ .policy | default "before-hook-creation,hook-succeeded" }}
{{- end }}

{{/* The restricted container security context, shared by every container. */}}
{{- define "image-awaiter.containerSecurityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "image-awaiter.dockerConfigJson" -}}
{{- with .Values.puller.imagePullSecret }}
{{- $auth := printf "%s:%s" .username .password | b64enc }}
{{- $entry := dict "username" .username "password" .password "auth" $auth }}
{{- if .email }}{{- $_ := set $entry "email" .email }}{{- end }}
{{- dict "auths" (dict .registry $entry) | toJson | b64enc }}
{{- end }}
{{- end }}
