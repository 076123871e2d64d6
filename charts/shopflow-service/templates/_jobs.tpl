{{/* Migrations run before every sync (Argo CD PreSync hook), never by the pods. */}}
{{- define "shopflow-service.migration" -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "shopflow-service.name" . }}-migrate
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "shopflow-service.workloadLabels" . | nindent 4 }}
  annotations:
    argocd.argoproj.io/hook: PreSync
    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation,HookSucceeded
    {{- include "shopflow-service.checkovSkips" .Values.checkovSkips | nindent 4 }}
spec:
  backoffLimit: 2
  activeDeadlineSeconds: 600
  ttlSecondsAfterFinished: 3600
  template:
    metadata:
      labels:
        {{- include "shopflow-service.selectorLabels" . | nindent 8 }}
        job: migrate
      annotations:
        # A sidecar would keep the Job from ever completing; it only talks to RDS.
        sidecar.istio.io/inject: "false"
    spec:
      restartPolicy: Never
      serviceAccountName: {{ include "shopflow-service.name" . }}
      automountServiceAccountToken: false
      securityContext:
        {{- include "shopflow-service.podSecurityContext" . | nindent 8 }}
      containers:
        - name: migrate
          image: {{ include "shopflow-service.image" . }}
          imagePullPolicy: Always
          command: ["python", "-m", {{ include "shopflow-service.package" . | quote }}, "migrate"]
          envFrom:
            {{- include "shopflow-service.envFrom" . | nindent 12 }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          securityContext:
            {{- include "shopflow-service.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            {{- include "shopflow-service.volumeMounts" . | nindent 12 }}
      volumes:
        {{- include "shopflow-service.volumes" . | nindent 8 }}
{{- end -}}

{{/* Secrets come from AWS Secrets Manager; no Secret with data is ever rendered from values. */}}
{{- define "shopflow-service.externalsecret" -}}
{{- if .Values.externalSecret.enabled }}
{{- $prefix := include "shopflow-service.envPrefix" . }}
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: {{ include "shopflow-service.name" . }}-secrets
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "shopflow-service.labels" . | nindent 4 }}
  annotations:
    # Secrets must exist before the PreSync migration Job reads them.
    argocd.argoproj.io/sync-wave: "-1"
spec:
  refreshInterval: {{ .Values.externalSecret.refreshInterval }}
  secretStoreRef:
    kind: ClusterSecretStore
    name: {{ .Values.externalSecret.storeName }}
  target:
    name: {{ include "shopflow-service.name" . }}-secrets
    creationPolicy: Owner
  data:
    {{- range $key, $property := .Values.externalSecret.keys }}
    - secretKey: {{ printf "%s%s" $prefix $key }}
      remoteRef:
        key: {{ $.Values.externalSecret.remoteKey }}
        property: {{ $property }}
    {{- end }}
{{- end }}
{{- end -}}

{{/* Everything a service chart renders, with the shared defaults merged in. */}}
{{- define "shopflow-service.all" -}}
{{- $merged := fromYaml (include "shopflow-service.context" .) -}}
{{- $ctx := dict "Values" $merged.Values "Release" .Release "Chart" .Chart "Capabilities" .Capabilities -}}
{{- $parts := list "configmap" "serviceaccount" "service" "deployment" "hpa" "pdb" "networkpolicy" "destinationrule" "authorizationpolicy" "migration" "externalsecret" -}}
{{- range $parts }}
{{- $doc := include (printf "shopflow-service.%s" .) $ctx | trim }}
{{- if $doc }}
---
{{ $doc }}
{{- end }}
{{- end }}
{{- end -}}
