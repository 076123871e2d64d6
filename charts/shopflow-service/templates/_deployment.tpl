{{- define "shopflow-service.deployment" -}}
{{- $l := .Values.lifecycle -}}
{{- if le (int $l.terminationGracePeriodSeconds) (add $l.preStopSleepSeconds $l.drainSeconds | int) -}}
{{- fail (printf "lifecycle.terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + drainSeconds (%v)" $l.terminationGracePeriodSeconds (add $l.preStopSleepSeconds $l.drainSeconds)) -}}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "shopflow-service.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "shopflow-service.workloadLabels" . | nindent 4 }}
  annotations:
    {{- include "shopflow-service.checkovSkips" .Values.checkovSkips | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "shopflow-service.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        {{- include "shopflow-service.workloadLabels" . | nindent 8 }}
      annotations:
        # A config change rolls the pods.
        checksum/config: {{ include "shopflow-service.configData" . | sha256sum }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ .Values.port | quote }}
        prometheus.io/path: /metrics
    spec:
      serviceAccountName: {{ include "shopflow-service.name" . }}
      automountServiceAccountToken: false
      securityContext:
        {{- include "shopflow-service.podSecurityContext" . | nindent 8 }}
      terminationGracePeriodSeconds: {{ .Values.lifecycle.terminationGracePeriodSeconds }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: topology.kubernetes.io/zone
          whenUnsatisfiable: {{ .Values.topologySpread.zone }}
          labelSelector:
            matchLabels:
              {{- include "shopflow-service.selectorLabels" . | nindent 14 }}
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: {{ .Values.topologySpread.node }}
          labelSelector:
            matchLabels:
              {{- include "shopflow-service.selectorLabels" . | nindent 14 }}
      containers:
        - name: {{ include "shopflow-service.name" . }}
          image: {{ include "shopflow-service.image" . }}
          imagePullPolicy: Always
          ports:
            - name: http
              containerPort: {{ .Values.port }}
              protocol: TCP
          envFrom:
            {{- include "shopflow-service.envFrom" . | nindent 12 }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          securityContext:
            {{- include "shopflow-service.containerSecurityContext" . | nindent 12 }}
          startupProbe:
            httpGet: {path: /health, port: http}
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet: {path: /health, port: http}
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /ready, port: http}
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          lifecycle:
            preStop:
              # Keeps serving while endpoints and the mesh drop the pod.
              sleep:
                seconds: {{ .Values.lifecycle.preStopSleepSeconds }}
          volumeMounts:
            {{- include "shopflow-service.volumeMounts" . | nindent 12 }}
      volumes:
        {{- include "shopflow-service.volumes" . | nindent 8 }}
{{- end -}}
