{{/*
One workload: its ConfigMap, Deployment and PodDisruptionBudget.
Args: root, component (name suffix and component label), program (binary), config (the
service's own config for this workload), replicas, env, ports, resources, pdb, and optionally
secretFiles (Secret keys mounted as files: name, secretName, key, mountPath) and volumes
(read-only mounts: name, mountPath, source — a volume source such as persistentVolumeClaim).
*/}}
{{- define "bcfy.workloadManifests" -}}
{{- $name := include "bcfy.workload" . -}}
{{- $configFile := include "bcfy.configFile" . -}}
{{- $pod := merge (dict "configMap" $name "configFile" $configFile) . -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
  labels:
    {{- include "bcfy.labels" . | nindent 4 }}
data:
  config.yaml: |
    {{- $configFile | nindent 4 }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "bcfy.labels" . | nindent 4 }}
spec:
  {{- if not .autoscaled }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "bcfy.selectorLabels" . | nindent 6 }}
  template:
    {{- include "bcfy.podTemplate" $pod | nindent 4 }}
{{- if .pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "bcfy.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "bcfy.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
