{{/* The release's base name: the release name, with the chart's name unless it already holds it. */}}
{{- define "mua-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mua-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component (root context in .root, the component in .c). */}}
{{- define "mua-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .c.name }}
{{- end -}}

{{/*
The Deployments to run, as a YAML list: one per side (split) or one for both (combined). Each names its
sides, so every template renders a component the same way. Checks what the schema cannot (values that are
required only in some modes) and fails with the value to set.
*/}}
{{- define "mua-operator.components" -}}
{{- $v := .Values -}}
{{- if and (gt (int $v.replicas) 1) (not $v.leaderElection.enabled) -}}
{{- fail "replicas > 1 needs leaderElection.enabled: true (two acting replicas would both grant and revoke)" -}}
{{- end -}}
{{- range $side := list "security" "backup" -}}
{{- $azure := (index $v $side).azure -}}
{{- if not $azure.tenantId }}{{ fail (printf "%s.azure.tenantId is required: the %s side's home tenant" $side $side) }}{{ end -}}
{{- if not $azure.clientId }}{{ fail (printf "%s.azure.clientId is required: the %s side's application (client) ID" $side $side) }}{{ end -}}
{{- if and (eq $azure.credential "secret") (not $azure.secret.name) -}}
{{- fail (printf "%s.azure.secret.name is required with %s.azure.credential: secret" $side $side) -}}
{{- end -}}
{{- end -}}
{{- $fullname := include "mua-operator.fullname" . -}}
{{- $port := int $v.metrics.port -}}
{{- if eq $v.mode "split" -}}
{{- if not $v.backup.azure.principalId -}}
{{- fail "backup.azure.principalId is required in mode: split: the security side elevates the backup side's identity and cannot ask its credential (or use mode: combined)" -}}
{{- end }}
- name: security
  fullname: {{ printf "%s-security" $fullname }}
  sides: [security]
  metricsPort: {{ $port }}
- name: backup
  fullname: {{ printf "%s-backup" $fullname }}
  sides: [backup]
  {{- /* On the host's network the two Deployments' pods share the node's ports. */}}
  metricsPort: {{ if $v.hostNetwork }}{{ add $port 1 }}{{ else }}{{ $port }}{{ end }}
{{- else }}
- name: operator
  fullname: {{ $fullname }}
  sides: [security, backup]
  metricsPort: {{ $port }}
{{- end -}}
{{- end -}}

{{/* The image reference: by digest when one is given (the tag is then only informative), else by tag. */}}
{{- define "mua-operator.image" -}}
{{- $i := .Values.image -}}
{{- if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository ($i.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The Leases a component's sides hold (src/run: mua-operator-<side>). */}}
{{- define "mua-operator.leases" -}}
{{- range .sides }}
- mua-operator-{{ . }}
{{- end -}}
{{- end -}}

{{- define "mua-operator.usesWorkloadIdentity" -}}
{{- $root := .root -}}
{{- range .c.sides -}}
{{- if eq (index $root.Values .).azure.credential "workloadIdentity" }}true{{ end -}}
{{- end -}}
{{- end -}}

{{/* Whole seconds of a duration the schema allows ("20s", "1m", "1m30s"). */}}
{{- define "mua-operator.seconds" -}}
{{- $s := 0 -}}
{{- range regexFindAll "[0-9]+[hms]" . -1 -}}
{{- $n := int (trimSuffix "h" (trimSuffix "m" (trimSuffix "s" .))) -}}
{{- if hasSuffix "h" . }}{{ $s = add $s (mul $n 3600) }}{{ else if hasSuffix "m" . }}{{ $s = add $s (mul $n 60) }}{{ else }}{{ $s = add $s $n }}{{ end -}}
{{- end -}}
{{- $s -}}
{{- end -}}
