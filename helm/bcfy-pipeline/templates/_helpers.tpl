{{/* Names and labels. */}}
{{- define "bcfy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bcfy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The name of one workload: fullname-component (e.g. rel-bcfy-pipeline-poller-fire). */}}
{{- define "bcfy.workload" -}}
{{- printf "%s-%s" (include "bcfy.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bcfy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bcfy.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "bcfy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "bcfy.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: bcfy-pipeline
{{- end -}}

{{- define "bcfy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "bcfy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "bcfy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "bcfy.broadcastifySecret" -}}
{{- default (printf "%s-broadcastify" (include "bcfy.fullname" .)) .Values.secrets.broadcastify.existingSecret -}}
{{- end -}}

{{- define "bcfy.directorySecret" -}}
{{- default (printf "%s-directory" (include "bcfy.fullname" .)) .Values.secrets.directory.existingSecret -}}
{{- end -}}

{{- define "bcfy.sttSecret" -}}
{{- default (printf "%s-stt" (include "bcfy.fullname" .)) .Values.secrets.stt.existingSecret -}}
{{- end -}}

{{/*
A service's config file: the shared `config`, the service's own `config` over it, then what
the chart owns (the admin port, the NATS credentials file and TLS files). Several NATS URLs mean
a JetStream cluster: streams and buckets then get three replicas unless `topology.replicas` is
set. Args: root, program, config (the service's own config, already merged with anything per
workload).
*/}}
{{- define "bcfy.configFile" -}}
{{- $merged := mustMergeOverwrite (deepCopy .root.Values.config) (deepCopy .config) -}}
{{- $topology := $merged.topology | default dict -}}
{{- if and (gt (len ($merged.nats.urls | default list)) 1) (not (hasKey $topology "replicas")) -}}
{{- $_ := set $topology "replicas" 3 -}}
{{- $_ := set $merged "topology" $topology -}}
{{- end -}}
{{- $owned := dict "admin" (dict "listen_addr" (printf "0.0.0.0:%d" (int .root.Values.adminPort))) -}}
{{- $nats := dict -}}
{{- if and .root.Values.secrets.nats.existingSecret (not (include "bcfy.natsUserSecret" .)) -}}
{{- $_ := set $nats "credentials_file" "/etc/bcfy/nats/nats.creds" -}}
{{- end -}}
{{- with .root.Values.secrets.nats.tls -}}
{{- if .existingSecret -}}
{{- $tls := dict "required" true "ca_file" "/etc/bcfy/nats-tls/ca.crt" -}}
{{- if .clientCertificate -}}
{{- $_ := set $tls "cert_file" "/etc/bcfy/nats-tls/tls.crt" -}}
{{- $_ := set $tls "key_file" "/etc/bcfy/nats-tls/tls.key" -}}
{{- end -}}
{{- $_ := set $nats "tls" $tls -}}
{{- end -}}
{{- end -}}
{{- if $nats -}}
{{- $_ := set $owned "nats" $nats -}}
{{- end -}}
{{- $merged = mustMergeOverwrite $merged $owned -}}
{{- toYaml $merged -}}
{{- end -}}

{{/* The Secret with this program's own NATS user's password, if it has one. Args: root, program. */}}
{{- define "bcfy.natsUserSecret" -}}
{{- index (.root.Values.secrets.nats.users | default dict) .program | default "" -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: the service's shutdown_grace ("30s") plus the margin. */}}
{{- define "bcfy.gracePeriod" -}}
{{- $grace := .config.shutdown_grace | toString | trimSuffix "s" | int -}}
{{- add $grace .root.Values.terminationGraceMarginSeconds -}}
{{- end -}}

{{/*
One pod template. Args: root, component, program, configMap, config (for the grace period),
env (list of env entries), ports (extra container ports), resources, grpcProbe (bool).
*/}}
{{- define "bcfy.podTemplate" -}}
metadata:
  labels:
    {{- include "bcfy.selectorLabels" . | nindent 4 }}
    {{- with .root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ .configFile | sha256sum }}
    {{- with .root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "bcfy.serviceAccountName" .root }}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: {{ include "bcfy.gracePeriod" . }}
  {{- with .root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: {{ .program }}
      image: {{ include "bcfy.image" .root }}
      imagePullPolicy: {{ .root.Values.image.pullPolicy }}
      command: [{{ .program | quote }}]
      env:
        - name: BCFY_CONFIG_FILE
          value: /etc/bcfy/config.yaml
        {{- with include "bcfy.natsUserSecret" . }}
        - name: BCFY_NATS__USER
          value: {{ $.program | quote }}
        - name: BCFY_NATS__PASSWORD
          valueFrom:
            secretKeyRef: {name: {{ . | quote }}, key: password}
        {{- end }}
        {{- with .env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with .root.Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: admin
          containerPort: {{ .root.Values.adminPort }}
          protocol: TCP
        {{- with .ports }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      livenessProbe:
        httpGet: {path: /livez, port: admin}
        periodSeconds: 10
        failureThreshold: 6
      readinessProbe:
        httpGet: {path: /readyz, port: admin}
        periodSeconds: 5
        failureThreshold: 3
      startupProbe:
        httpGet: {path: /livez, port: admin}
        periodSeconds: 2
        failureThreshold: 60
      securityContext:
        {{- toYaml .root.Values.securityContext | nindent 8 }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/bcfy/config.yaml
          subPath: config.yaml
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if and .root.Values.secrets.nats.existingSecret (not (include "bcfy.natsUserSecret" .)) }}
        - name: nats-credentials
          mountPath: /etc/bcfy/nats
          readOnly: true
        {{- end }}
        {{- if .root.Values.secrets.nats.tls.existingSecret }}
        - name: nats-tls
          mountPath: /etc/bcfy/nats-tls
          readOnly: true
        {{- end }}
        {{- range .secretFiles }}
        - name: {{ .name }}
          mountPath: {{ .mountPath }}
          readOnly: true
        {{- end }}
        {{- range .volumes }}
        - name: {{ .name }}
          mountPath: {{ .mountPath }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ .configMap }}
    - name: tmp
      emptyDir: {}
    {{- if and .root.Values.secrets.nats.existingSecret (not (include "bcfy.natsUserSecret" .)) }}
    - name: nats-credentials
      secret:
        secretName: {{ .root.Values.secrets.nats.existingSecret }}
        items:
          - key: nats.creds
            path: nats.creds
    {{- end }}
    {{- with .root.Values.secrets.nats.tls }}
    {{- if .existingSecret }}
    - name: nats-tls
      secret:
        secretName: {{ .existingSecret }}
        items:
          - {key: ca.crt, path: ca.crt}
          {{- if .clientCertificate }}
          - {key: tls.crt, path: tls.crt}
          - {key: tls.key, path: tls.key}
          {{- end }}
    {{- end }}
    {{- end }}
    {{- range .secretFiles }}
    - name: {{ .name }}
      secret:
        secretName: {{ .secretName }}
        items:
          - key: {{ .key }}
            path: {{ .key }}
    {{- end }}
    {{- range .volumes }}
    - name: {{ .name }}
      {{- toYaml .source | nindent 6 }}
    {{- end }}
  {{- with .root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .root.Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* Broadcastify credentials as env (poller, archive-cache). */}}
{{- define "bcfy.broadcastifyEnv" -}}
- name: BCFY_BROADCASTIFY__USERNAME
  valueFrom:
    secretKeyRef: {name: {{ include "bcfy.broadcastifySecret" . }}, key: username, optional: true}
- name: BCFY_BROADCASTIFY__PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "bcfy.broadcastifySecret" . }}, key: password, optional: true}
{{- end -}}

{{/* The directory's credentials as env (archive-cache): its API keys, and the account for the
Calls API's user token. */}}
{{- define "bcfy.directoryEnv" -}}
- name: BCFY_DIRECTORY__UPSTREAM__CATALOG_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "bcfy.directorySecret" . }}, key: catalog-key, optional: true}
- name: BCFY_DIRECTORY__UPSTREAM__API_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "bcfy.directorySecret" . }}, key: api-key, optional: true}
- name: BCFY_DIRECTORY__UPSTREAM__USERNAME
  valueFrom:
    secretKeyRef: {name: {{ include "bcfy.broadcastifySecret" . }}, key: username, optional: true}
- name: BCFY_DIRECTORY__UPSTREAM__PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "bcfy.broadcastifySecret" . }}, key: password, optional: true}
{{- end -}}
