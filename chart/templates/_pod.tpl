{{/*
The puller pod, defined once: used by the hook's DaemonSet manifest (configmap.yaml) and by the
continuous DaemonSet, called with (dict "root" $ "component" "hook-puller" or "continuous-puller").
It mirrors image_awaiter.pullers.puller_pod_spec exactly (a test compares
them): nothing runs inside the pulled images; restricted; explicit requests and limits.
*/}}
{{- define "image-awaiter.pullerPodSpec" -}}
{{- $root := .root -}}
{{- $security := include "image-awaiter.containerSecurityContext" (dict "uid" 65534) -}}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: 0
securityContext:
  runAsNonRoot: true
  runAsUser: 65534
  runAsGroup: 65534
  seccompProfile:
    type: RuntimeDefault
{{- if eq $root.Values.puller.method "initContainers" }}
initContainers:
  - name: install-helper
    image: {{ include "image-awaiter.helperImage" $root }}
    imagePullPolicy: IfNotPresent
    command: ["/usr/local/bin/image-awaiter-noop", "install", "/helper/noop"]
    resources:
      {{- toYaml $root.Values.puller.resources | nindent 6 }}
    securityContext:
      {{- $security | nindent 6 }}
    volumeMounts:
      - name: helper
        mountPath: /helper
  {{- range $index, $image := $root.Values.images }}
  - name: pull-{{ $index }}
    image: {{ $image }}
    imagePullPolicy: IfNotPresent
    command: ["/helper/noop"]
    resources:
      {{- toYaml $root.Values.puller.resources | nindent 6 }}
    securityContext:
      {{- $security | nindent 6 }}
    volumeMounts:
      - name: helper
        mountPath: /helper
        readOnly: true
  {{- end }}
volumes:
  - name: helper
    emptyDir:
      sizeLimit: 1Mi
{{- else }}
volumes:
  {{- range $index, $image := $root.Values.images }}
  - name: image-{{ $index }}
    image:
      reference: {{ $image }}
      pullPolicy: IfNotPresent
  {{- end }}
{{- end }}
containers:
  - name: pause
    image: {{ $root.Values.puller.pauseImage }}
    imagePullPolicy: IfNotPresent
    resources:
      {{- toYaml $root.Values.puller.resources | nindent 6 }}
    securityContext:
      {{- $security | nindent 6 }}
    {{- if eq $root.Values.puller.method "imageVolumes" }}
    volumeMounts:
      {{- range $index, $image := $root.Values.images }}
      - name: image-{{ $index }}
        mountPath: /images/{{ $index }}
        readOnly: true
      {{- end }}
    {{- end }}
{{- with $root.Values.puller.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.puller.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.puller.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with include "image-awaiter.priorityClassName" $root }}
priorityClassName: {{ . }}
{{- end }}
{{- $secrets := $root.Values.puller.imagePullSecrets }}
{{- if $root.Values.puller.imagePullSecret.create }}
{{- $secrets = append $secrets (include "image-awaiter.pullSecretName" .) }}
{{- end }}
{{- with $secrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end }}

{{/* A puller DaemonSet around the shared pod; `component` tells the variants apart. */}}
{{- define "image-awaiter.pullerDaemonSet" -}}
{{- $name := printf "%s-%s" (include "image-awaiter.fullname" .root) .component -}}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ $name }}
  labels:
    {{- include "image-awaiter.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ include "image-awaiter.name" .root }}
      app.kubernetes.io/instance: {{ .root.Release.Name }}
      app.kubernetes.io/component: {{ .component }}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 100%
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ include "image-awaiter.name" .root }}
        app.kubernetes.io/instance: {{ .root.Release.Name }}
        app.kubernetes.io/component: {{ .component }}
    spec:
      {{- include "image-awaiter.pullerPodSpec" . | nindent 6 }}
{{- end }}
