{{- define "shopflow-mesh.labels" -}}
app.kubernetes.io/name: shopflow-mesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: shopflow
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
