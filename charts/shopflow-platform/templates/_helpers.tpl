{{/* The environment's namespace, shopflow-<environment>. */}}
{{- define "shopflow-platform.namespace" -}}
shopflow-{{ .Values.environment }}
{{- end }}

{{/* Labels every platform object carries. */}}
{{- define "shopflow-platform.labels" -}}
{{- toYaml (dict "app.kubernetes.io/name" "shopflow-platform" "app.kubernetes.io/part-of" "shopflow" "app.kubernetes.io/managed-by" .Release.Service) }}
{{- end }}
