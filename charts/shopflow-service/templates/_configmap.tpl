{{- define "shopflow-service.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "shopflow-service.name" . }}-config
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "shopflow-service.labels" . | nindent 4 }}
data:
  {{- include "shopflow-service.configData" . | nindent 2 }}
{{- end -}}

{{- define "shopflow-service.configData" -}}
{{- $prefix := include "shopflow-service.envPrefix" . }}
{{ $prefix }}LOG_LEVEL: {{ .Values.config.logLevel | quote }}
{{ $prefix }}JWT_ISSUER: {{ required "config.jwtIssuer is required" .Values.config.jwtIssuer | quote }}
{{ $prefix }}OAUTH_CLIENT_ID: {{ include "shopflow-service.name" . | quote }}
{{- range $name := list "user-auth" "catalog-api" "order-mgmt" "payment-api" "notify-hub" }}
{{ $prefix }}{{ $name | replace "-" "_" | upper }}_URL: {{ printf "http://%s:%d" $name (int $.Values.port) | quote }}
{{- end }}
{{- range $key, $value := .Values.config.extra }}
{{ $prefix }}{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end -}}
