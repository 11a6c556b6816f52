{{/*
The puller pod, defined once: used by the hook's DaemonSet manifests (configmap.yaml) and by the
continuous DaemonSets, called with (dict "root" $ "component" "hook-puller" or "continuous-puller"
"group" <one entry of image-awaiter.pullGroups>). It mirrors image_awaiter.spec.pullers.puller_pod_spec
with groups.apply_placement exactly (a test compares them): nothing runs inside the pulled
images; restricted; explicit requests and limits.
*/}}

{{/* Pull groups from `images` and the images derived from `jupyterhub` (_jupyterhub.tpl): a
     string entry, or an object without placement, joins the default
     group; objects with the same {nodeSelector, tolerations, affinity} share one group, in order
     of first appearance. Gives `groups: [{suffix, images, placement}]` as YAML; the default
     group's suffix is "" (today's names), another's is 6 characters of its placement's hash. */}}
{{- define "image-awaiter.pullGroups" -}}
{{- $order := list -}}
{{- $byKey := dict -}}
{{- $derived := (include "image-awaiter.jupyterhubImages" . | fromJson).entries -}}
{{- if not (or .Values.images $derived) -}}
{{- fail "give images to pull: `images`, or JupyterHub's profiles in `jupyterhub.singleuser`" -}}
{{- end -}}
{{- range $entry := concat (.Values.images | default list) $derived -}}
{{- $image := $entry -}}
{{- $placement := dict -}}
{{- if kindIs "map" $entry -}}
{{- $image = $entry.image -}}
{{- range $part := list "nodeSelector" "tolerations" "affinity" -}}
{{- with get $entry $part -}}
{{- $_ := set $placement $part . -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $key := toJson $placement -}}
{{- if not (hasKey $byKey $key) -}}
{{- $order = append $order $key -}}
{{- $_ := set $byKey $key (dict "placement" $placement "images" (list)) -}}
{{- end -}}
{{- $group := get $byKey $key -}}
{{- if not (has $image $group.images) -}}
{{- $_ := set $group "images" (append $group.images $image) -}}
{{- end -}}
{{- end -}}
groups:
{{- range $key := $order }}
{{- $group := get $byKey $key }}
  - suffix: {{ ternary "" (sha256sum $key | trunc 6) (eq $key "{}") | quote }}
    images: {{ toJson $group.images }}
    placement: {{ toJson $group.placement }}
{{- end }}
{{- end }}

{{/* One puller container (dict "root" "name" "image" "command"): the template twin of
     image_awaiter.spec.pullers._container. Volume mounts are added by the caller. */}}
{{- define "image-awaiter.pullerContainer" -}}
- name: {{ .name }}
  image: {{ .image }}
  imagePullPolicy: IfNotPresent
  {{- with .command }}
  command: {{ toJson . }}
  {{- end }}
  resources:
    {{- toYaml .root.Values.puller.resources | nindent 4 }}
  securityContext:
    {{- include "image-awaiter.containerSecurityContext" (dict "uid" 65534) | nindent 4 }}
{{- end }}

{{/* One template per puller method (puller.method), the twins of the awaiter's builders: each
     gives the pod's initContainers, volumes and the pause container's volumeMounts. */}}

{{/* initContainers: each image an init container running a static no-op helper copied in
     first, so nothing inside the image runs (shell-less images work). */}}
{{- define "image-awaiter.pullerMethod.initContainers" -}}
initContainers:
  {{- include "image-awaiter.pullerContainer" (dict "root" .root "name" "install-helper" "image" (include "image-awaiter.helperImage" .root) "command" (list "/usr/local/bin/image-awaiter-noop" "install" "/helper/noop")) | nindent 2 }}
    volumeMounts:
      - name: helper
        mountPath: /helper
  {{- range $index, $image := .images }}
  {{- include "image-awaiter.pullerContainer" (dict "root" $.root "name" (printf "pull-%d" $index) "image" $image "command" (list "/helper/noop")) | nindent 2 }}
    volumeMounts:
      - name: helper
        mountPath: /helper
        readOnly: true
  {{- end }}
volumes:
  - name: helper
    emptyDir:
      sizeLimit: 1Mi
{{- end }}

{{/* imageVolumes: each image an image volume mounted into the pause container (the ImageVolume
     feature); the kubelet pulls it, nothing runs from it. */}}
{{- define "image-awaiter.pullerMethod.imageVolumes" -}}
volumes:
  {{- range $index, $image := .images }}
  - name: image-{{ $index }}
    image:
      reference: {{ $image }}
      pullPolicy: IfNotPresent
  {{- end }}
pauseVolumeMounts:
  {{- range $index, $image := .images }}
  - name: image-{{ $index }}
    mountPath: /images/{{ $index }}
    readOnly: true
  {{- end }}
{{- end }}

{{- define "image-awaiter.pullerPodSpec" -}}
{{- $root := .root -}}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: 0
securityContext:
  runAsNonRoot: true
  runAsUser: 65534
  runAsGroup: 65534
  seccompProfile:
    type: RuntimeDefault
{{- $placement := .group.placement }}
{{- $method := include (printf "image-awaiter.pullerMethod.%s" $root.Values.puller.method) (dict "root" $root "images" .group.images) | fromYaml }}
{{- with $method.initContainers }}
initContainers:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  {{- toYaml $method.volumes | nindent 2 }}
containers:
  {{- include "image-awaiter.pullerContainer" (dict "root" $root "name" "pause" "image" $root.Values.puller.pauseImage) | nindent 2 }}
    {{- with $method.pauseVolumeMounts }}
    volumeMounts:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- /* The group's placement joins the puller's: nodeSelectors merged (the group's value wins),
       tolerations of both (once each), the group's affinity instead of the puller's when it has one. */}}
{{- with merge (deepCopy ($placement.nodeSelector | default dict)) ($root.Values.puller.nodeSelector | default dict) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with concat ($root.Values.puller.tolerations | default list) ($placement.tolerations | default list) | uniq }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $placement.affinity | default $root.Values.puller.affinity }}
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

{{/* A puller DaemonSet around the shared pod (dict "root" "component" "group"); `component`
     and the group's suffix tell the variants apart (name, labels, selector). */}}
{{- define "image-awaiter.pullerDaemonSet" -}}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ include "image-awaiter.pullerName" . }}
  labels:
    {{- include "image-awaiter.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- include "image-awaiter.selectorLabels" . | nindent 6 }}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 100%
  template:
    metadata:
      {{- include "image-awaiter.podMetadata" (dict "root" .root "component" .component "group" .group "labels" .root.Values.puller.podLabels "annotations" .root.Values.puller.podAnnotations) | nindent 6 }}
    spec:
      {{- include "image-awaiter.pullerPodSpec" . | nindent 6 }}
{{- end }}
