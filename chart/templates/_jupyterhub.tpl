{{/*
JupyterHub's user images, derived from zero-to-jupyterhub's own values under `jupyterhub`
(`singleuser`, `scheduling`, `prePuller`: the blocks a parent chart also gives z2jh, by YAML
anchor), so the hook awaits each profile's image on that profile's nodes. The template twin of
image_awaiter.spec.jupyterhub and image_awaiter.core.kubespawner (a test compares them on the
same values): KubeSpawner's settings from z2jh's values, each profile's `kubespawner_override`
and every combination of its `profile_options` choices applied as KubeSpawner applies them (a
dict setting merged, anything else replaced), then the pod's images and placement. Gives
`{"entries": [{image, nodeSelector, tolerations, affinity}]}` for image-awaiter.pullGroups.
*/}}
{{- define "image-awaiter.jupyterhubImages" -}}
{{- $jh := .Values.jupyterhub | default dict -}}
{{- $su := $jh.singleuser | default dict -}}
{{- $entries := list -}}
{{- if or $su.profileList ($su.image | default dict).name -}}
{{- $base := include "image-awaiter.kubespawnerBase" $jh | fromJson -}}
{{- $profiles := $su.profileList | default (list dict) -}}
{{- range $profile := $profiles -}}
{{- $settings := include "image-awaiter.kubespawnerOverride" (dict "settings" $base "override" ($profile.kubespawner_override | default dict)) | fromJson -}}
{{- $options := list -}}
{{- range $name, $option := $profile.profile_options | default dict -}}
{{- if $option.choices -}}
{{- $options = append $options $option -}}
{{- end -}}
{{- end -}}
{{- range $variant := (include "image-awaiter.kubespawnerVariants" (dict "settings" $settings "options" $options) | fromJson).items -}}
{{- $entries = concat $entries (include "image-awaiter.kubespawnerEntries" $variant | fromJson).entries -}}
{{- end -}}
{{- end -}}
{{- /* prePuller.extraImages: the user pods' placement with no profile, plus its tolerations */ -}}
{{- $extra := ($jh.prePuller | default dict).extraImages | default dict -}}
{{- if $extra -}}
{{- $placement := omit $base "image" "init_containers" "extra_containers" "extra_container_config" -}}
{{- $_ := set $placement "tolerations" (concat ($base.tolerations | default list) (($jh.prePuller | default dict).extraTolerations | default list)) -}}
{{- $_ := set $placement "extra_images" (list) -}}
{{- range $key, $image := $extra -}}
{{- $_ := set $placement "extra_images" (append $placement.extra_images (ternary (printf "%s:%v" $image.name $image.tag) $image.name (not (empty $image.tag)))) -}}
{{- end -}}
{{- $entries = concat $entries (include "image-awaiter.kubespawnerEntries" $placement | fromJson).entries -}}
{{- end -}}
{{- end -}}
{{ toJson (dict "entries" $entries) }}
{{- end -}}

{{/* KubeSpawner's pull settings as z2jh's jupyterhub_config.py makes them (the dict `jupyterhub`). */}}
{{- define "image-awaiter.kubespawnerBase" -}}
{{- $su := .singleuser | default dict -}}
{{- $userPods := (.scheduling | default dict).userPods | default dict -}}
{{- $s := dict -}}
{{- with $su.image -}}
{{- if .name -}}
{{- $_ := set $s "image" (ternary (printf "%s:%v" .name .tag) .name (not (empty .tag))) -}}
{{- end -}}
{{- end -}}
{{- with $su.nodeSelector -}}
{{- $_ := set $s "node_selector" . -}}
{{- end -}}
{{- $required := ($su.extraNodeAffinity | default dict).required | default list -}}
{{- if eq (($userPods.nodeAffinity | default dict).matchNodePurpose | default "") "require" -}}
{{- $required = append $required (dict "matchExpressions" (list (dict "key" "hub.jupyter.org/node-purpose" "operator" "In" "values" (list "user")))) -}}
{{- end -}}
{{- with $required -}}
{{- $_ := set $s "node_affinity_required" . -}}
{{- end -}}
{{- with concat ($userPods.tolerations | default list) ($su.extraTolerations | default list) -}}
{{- $_ := set $s "tolerations" . -}}
{{- end -}}
{{- $init := $su.initContainers | default list -}}
{{- $cloud := $su.cloudMetadata | default dict -}}
{{- $block := ternary (not $cloud.enabled) (ne (toString $cloud.blockWithIptables) "false") (hasKey $cloud "enabled") -}}
{{- $tools := (($su.networkTools | default dict).image | default dict) -}}
{{- if and $block $tools.name -}}
{{- $init = append $init (dict "name" "block-cloud-metadata" "image" (ternary (printf "%s:%v" $tools.name $tools.tag) $tools.name (not (empty $tools.tag)))) -}}
{{- end -}}
{{- with $init -}}
{{- $_ := set $s "init_containers" . -}}
{{- end -}}
{{- with $su.extraContainers -}}
{{- $_ := set $s "extra_containers" . -}}
{{- end -}}
{{- with $su.extraPodConfig -}}
{{- $_ := set $s "extra_pod_config" . -}}
{{- end -}}
{{ toJson $s }}
{{- end -}}

{{/* KubeSpawner's _apply_overrides (dict "settings" "override"): a dict setting is merged, a
     null removing its key; anything else replaces; image_spec is image. */}}
{{- define "image-awaiter.kubespawnerOverride" -}}
{{- $settings := deepCopy .settings -}}
{{- range $key, $value := .override -}}
{{- $name := ternary "image" $key (eq $key "image_spec") -}}
{{- if and (has $name (list "node_selector" "extra_pod_config" "extra_container_config")) (kindIs "map" $value) -}}
{{- $merged := mergeOverwrite (deepCopy (get $settings $name | default dict)) (deepCopy $value) -}}
{{- range $k, $v := $value -}}
{{- if kindIs "invalid" $v -}}
{{- $_ := unset $merged $k -}}
{{- end -}}
{{- end -}}
{{- $_ := set $settings $name $merged -}}
{{- else -}}
{{- $_ := set $settings $name $value -}}
{{- end -}}
{{- end -}}
{{ toJson $settings }}
{{- end -}}

{{/* Every combination of the options' choices over the settings (dict "settings" "options"),
     recursively: {"items": [settings...]}. */}}
{{- define "image-awaiter.kubespawnerVariants" -}}
{{- $items := list -}}
{{- if not .options -}}
{{- $items = list .settings -}}
{{- else -}}
{{- $rest := rest .options -}}
{{- range $choice := (first .options).choices -}}
{{- $next := include "image-awaiter.kubespawnerOverride" (dict "settings" $.settings "override" ($choice.kubespawner_override | default dict)) | fromJson -}}
{{- $items = concat $items (include "image-awaiter.kubespawnerVariants" (dict "settings" $next "options" $rest) | fromJson).items -}}
{{- end -}}
{{- end -}}
{{ toJson (dict "items" $items) }}
{{- end -}}

{{/* One pod's images, each with the pod's placement (KubeSpawner's make_pod, then
     extra_pod_config replacing whole fields): {"entries": [...]}. */}}
{{- define "image-awaiter.kubespawnerEntries" -}}
{{- $images := list -}}
{{- with (.extra_container_config | default dict).image | default .image -}}
{{- $images = append $images . -}}
{{- end -}}
{{- range $container := concat (.init_containers | default list) (.extra_containers | default list) -}}
{{- with $container.image -}}
{{- $images = append $images . -}}
{{- end -}}
{{- end -}}
{{- $images = concat $images (.extra_images | default list) -}}
{{- $placement := dict -}}
{{- with .node_selector -}}
{{- $_ := set $placement "nodeSelector" . -}}
{{- end -}}
{{- with .tolerations -}}
{{- $_ := set $placement "tolerations" . -}}
{{- end -}}
{{- with .node_affinity_required -}}
{{- $_ := set $placement "affinity" (dict "nodeAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (dict "nodeSelectorTerms" .))) -}}
{{- end -}}
{{- range $key, $value := .extra_pod_config | default dict -}}
{{- $field := get (dict "node_selector" "nodeSelector" "nodeSelector" "nodeSelector" "tolerations" "tolerations" "affinity" "affinity") $key -}}
{{- if $field -}}
{{- $_ := set $placement $field $value -}}
{{- end -}}
{{- end -}}
{{- $entries := list -}}
{{- range $image := $images -}}
{{- $entries = append $entries (merge (dict "image" $image) $placement) -}}
{{- end -}}
{{ toJson (dict "entries" $entries) }}
{{- end -}}
