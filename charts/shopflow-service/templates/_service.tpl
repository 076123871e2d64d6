{{- define "shopflow-service.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "shopflow-service.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "shopflow-service.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "shopflow-service.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.port }}
      targetPort: http
      protocol: TCP
      appProtocol: http
{{- end -}}

{{- define "shopflow-service.serviceaccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "shopflow-service.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "shopflow-service.labels" . | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end -}}

{{- define "shopflow-service.hpa" -}}
{{- if .Values.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "shopflow-service.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "shopflow-service.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "shopflow-service.name" . }}
  minReplicas: {{ .Values.autoscaling.minReplicas }}
  maxReplicas: {{ .Values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .Values.autoscaling.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ .Values.autoscaling.targetMemoryUtilizationPercentage }}
{{- end }}
{{- end -}}

{{- define "shopflow-service.pdb" -}}
{{- if .Values.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "shopflow-service.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "shopflow-service.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .Values.pdb.maxUnavailable }}
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "shopflow-service.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
