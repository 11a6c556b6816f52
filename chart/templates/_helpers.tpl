{{/* Every name and label the chart uses, in one place. */}}

{{- define "image-awaiter.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "image-awaiter.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "image-awaiter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "image-awaiter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "image-awaiter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "image-awaiter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "image-awaiter.image" -}}
{{- printf "%s:%s" .Values.awaiter.image.repository (default .Chart.AppVersion .Values.awaiter.image.tag) }}
{{- end }}

{{- define "image-awaiter.helperImage" -}}
{{- default (include "image-awaiter.image" .) .Values.puller.helperImage }}
{{- end }}

{{- define "image-awaiter.priorityClassName" -}}
{{- if .Values.puller.priorityClass.create }}
{{- default (printf "%s-puller" (include "image-awaiter.fullname" .)) .Values.puller.priorityClass.name }}
{{- else }}
{{- .Values.puller.priorityClass.name }}
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

{{/* The registry Secret the chart creates for a puller variant (dict "root" "component"): the
     hook's is a hook itself, so it exists before the hook Job even on the first install; the
     continuous DaemonSet's is a normal release resource. */}}
{{- define "image-awaiter.pullSecretName" -}}
{{- if eq .component "hook-puller" }}
{{- printf "%s-hook-pull-secret" (include "image-awaiter.fullname" .root) }}
{{- else }}
{{- printf "%s-pull-secret" (include "image-awaiter.fullname" .root) }}
{{- end }}
{{- end }}

{{- define "image-awaiter.dockerConfigJson" -}}
{{- with .Values.puller.imagePullSecret }}
{{- $auth := printf "%s:%s" .username .password | b64enc }}
{{- $entry := dict "username" .username "password" .password "auth" $auth }}
{{- if .email }}{{- $_ := set $entry "email" .email }}{{- end }}
{{- dict "auths" (dict .registry $entry) | toJson | b64enc }}
{{- end }}
{{- end }}
