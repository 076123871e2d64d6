{{/* The Kubernetes Service name and `app` label (ARCHITECTURE.md: user-auth, catalog-api, ...). */}}
{{- define "shopflow-service.name" -}}
{{- required "serviceName is required" .Values.serviceName -}}
{{- end -}}

{{- define "shopflow-service.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{- define "shopflow-service.image" -}}
{{- printf "%s.dkr.ecr.%s.amazonaws.com/%s/%s:%s" (required "image.account is required" (toString .Values.image.account)) .Values.image.region .Values.image.repositoryPrefix .Chart.Name (include "shopflow-service.tag" .) -}}
{{- end -}}

{{- define "shopflow-service.selectorLabels" -}}
app: {{ include "shopflow-service.name" . }}
app.kubernetes.io/name: {{ include "shopflow-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels on every object. The image tag is deliberately not among them: a
promotion then changes only the workloads, and `shopctl diff` shows just that.
*/}}
{{- define "shopflow-service.labels" -}}
{{ include "shopflow-service.selectorLabels" . }}
app.kubernetes.io/component: api
app.kubernetes.io/part-of: shopflow
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Workloads and their pods also carry the version (Istio reads `version`). */}}
{{- define "shopflow-service.workloadLabels" -}}
{{ include "shopflow-service.labels" . }}
version: {{ include "shopflow-service.tag" . | quote }}
app.kubernetes.io/version: {{ include "shopflow-service.tag" . | quote }}
{{- end -}}

{{/* SHOPFLOW_<PACKAGE>_: the service's settings prefix, from the image name. */}}
{{- define "shopflow-service.envPrefix" -}}
{{- printf "SHOPFLOW_%s_" (.Chart.Name | replace "-" "_" | upper) -}}
{{- end -}}

{{- define "shopflow-service.package" -}}
{{- .Chart.Name | replace "-" "_" -}}
{{- end -}}

{{- define "shopflow-service.principal" -}}
{{- printf "cluster.local/ns/%s/sa/%s" .namespace .serviceAccount -}}
{{- end -}}

{{/* checkov skips, each with its reason (README: "checkov skips"). */}}
{{- define "shopflow-service.checkovSkips" -}}
{{- range $i, $skip := . }}
checkov.io/skip{{ add1 $i }}: {{ printf "%s=%s" $skip.id $skip.reason | quote }}
{{- end }}
{{- end -}}

{{- define "shopflow-service.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.uid }}
runAsGroup: {{ .Values.securityContext.uid }}
fsGroup: {{ .Values.securityContext.uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "shopflow-service.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.uid }}
runAsGroup: {{ .Values.securityContext.uid }}
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Settings every container of the service gets; secrets are mounted as files. */}}
{{- define "shopflow-service.envFrom" -}}
- configMapRef:
    name: {{ include "shopflow-service.name" . }}-config
{{- end -}}

{{- define "shopflow-service.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.externalSecret.enabled }}
- name: secrets
  mountPath: /var/run/secrets/shopflow
  readOnly: true
{{- end }}
{{- end -}}

{{- define "shopflow-service.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .Values.externalSecret.enabled }}
- name: secrets
  secret:
    secretName: {{ include "shopflow-service.name" . }}-secrets
    defaultMode: 0400
{{- end }}
{{- end -}}
