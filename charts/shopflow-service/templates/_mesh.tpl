{{- define "shopflow-service.networkpolicy" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "shopflow-service.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "shopflow-service.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "shopflow-service.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        {{- if .Values.mesh.publicPrefixes }}
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ .Values.mesh.ingressNamespace }}
          podSelector:
            matchLabels:
              {{- toYaml .Values.mesh.ingressSelector | nindent 14 }}
        {{- end }}
        {{- /* A caller may have several rules (paths, methods); one selector each. */}}
        {{- $callers := list }}
        {{- range .Values.mesh.callers }}
        {{- $callers = append $callers .serviceAccount }}
        {{- end }}
        {{- range uniq $callers }}
        - podSelector:
            matchLabels:
              app: {{ . }}
        {{- end }}
      ports:
        - port: {{ .Values.port }}
          protocol: TCP
  egress:
    - to:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: kube-system
          podSelector:
            matchLabels:
              k8s-app: kube-dns
      ports:
        - {port: 53, protocol: UDP}
        - {port: 53, protocol: TCP}
    - to:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: istio-system
          podSelector:
            matchLabels:
              app: istiod
      ports:
        - {port: 15012, protocol: TCP}
    - to:
        {{- range .Values.database.cidrs }}
        - ipBlock:
            cidr: {{ . }}
        {{- end }}
      ports:
        - {port: {{ .Values.database.port }}, protocol: TCP}
    {{- if .Values.mesh.callees }}
    - to:
        {{- range .Values.mesh.callees }}
        - podSelector:
            matchLabels:
              app: {{ . }}
        {{- end }}
      ports:
        - port: {{ .Values.port }}
          protocol: TCP
    {{- end }}
    {{- with .Values.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{- define "shopflow-service.destinationrule" -}}
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {{ include "shopflow-service.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "shopflow-service.labels" . | nindent 4 }}
spec:
  host: {{ printf "%s.%s.svc.cluster.local" (include "shopflow-service.name" .) .Release.Namespace }}
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
    connectionPool:
      tcp:
        maxConnections: {{ .Values.mesh.connectionPool.maxConnections }}
        connectTimeout: 3s
      http:
        http1MaxPendingRequests: {{ .Values.mesh.connectionPool.maxPendingRequests }}
        maxRequestsPerConnection: 100
        idleTimeout: 60s
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
{{- end -}}

{{/*
ALLOW by workload identity, per path: the ingress gateway may call the public
prefixes, named callers their paths and GET /health, and every ShopFlow service
user-auth's JWKS and token endpoints. Anything else is denied by the namespace default.
*/}}
{{- define "shopflow-service.authorizationpolicy" -}}
{{- $ns := .Release.Namespace -}}
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: {{ include "shopflow-service.name" . }}
  namespace: {{ $ns }}
  labels:
    {{- include "shopflow-service.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels:
      app: {{ include "shopflow-service.name" . }}
  action: ALLOW
  rules:
    {{- if .Values.mesh.publicPrefixes }}
    - from:
        - source:
            principals:
              - {{ include "shopflow-service.principal" (dict "namespace" .Values.mesh.ingressNamespace "serviceAccount" .Values.mesh.ingressServiceAccount) }}
      to:
        - operation:
            paths:
              {{- range .Values.mesh.publicPrefixes }}
              - {{ . }}
              - {{ printf "%s/*" . }}
              {{- end }}
    {{- end }}
    {{- range .Values.mesh.callers }}
    - from:
        - source:
            principals:
              - {{ include "shopflow-service.principal" (dict "namespace" $ns "serviceAccount" .serviceAccount) }}
      to:
        - operation:
            {{- with .methods }}
            methods: {{ toYaml . | nindent 14 }}
            {{- end }}
            paths:
              {{- toYaml .paths | nindent 14 }}
    {{- end }}
    {{- with .Values.mesh.callers }}
    {{- /* A caller may check its callee's liveness by name (GET /health does no I/O). */}}
    - from:
        - source:
            principals:
              {{- range . }}
              - {{ include "shopflow-service.principal" (dict "namespace" $ns "serviceAccount" .serviceAccount) }}
              {{- end }}
      to:
        - operation:
            methods: [GET]
            paths: [/health]
    {{- end }}
{{- end -}}
