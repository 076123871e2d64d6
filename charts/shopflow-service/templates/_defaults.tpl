{{/*
Defaults shared by every service, kept once here. A service chart's values.yaml
holds only what differs (its name, prefixes, callers, secrets); environments
override either. Lists are replaced, not merged, as Helm does.
*/}}
{{- define "shopflow-service.defaults" -}}
image:
  account: "000000000000"
  region: ap-south-1
  repositoryPrefix: shopflow-platform
  tag: ""
replicaCount: 2
port: 4000
resources:
  requests: {cpu: 100m, memory: 192Mi}
  limits: {cpu: 500m, memory: 384Mi}
autoscaling:
  enabled: true
  minReplicas: 2
  maxReplicas: 5
  targetCPUUtilizationPercentage: 70
  targetMemoryUtilizationPercentage: 80
pdb:
  enabled: true
  maxUnavailable: 1
lifecycle:
  preStopSleepSeconds: 5
  drainSeconds: 15
  terminationGracePeriodSeconds: 30
topologySpread:
  zone: ScheduleAnyway
  node: ScheduleAnyway
securityContext:
  uid: 10001
config:
  logLevel: INFO
  jwtIssuer: https://api.shopflow.example/auth
  extra: {}
database:
  cidrs: ["10.0.0.0/16"]
  port: 5432
serviceAccount:
  annotations: {}
mesh:
  ingressNamespace: istio-system
  ingressServiceAccount: istio-ingressgateway
  ingressSelector: {istio: ingressgateway}
  publicPrefixes: []
  callers: []
  callees: [user-auth]
  connectionPool: {maxConnections: 100, maxPendingRequests: 100}
externalSecret:
  enabled: true
  storeName: aws-secrets-manager
  refreshInterval: 1h
  remoteKey: ""
  keys:
    DATABASE_URL: database_url
    OAUTH_CLIENT_SECRET: oauth_client_secret
checkovSkips:
  - id: CKV_K8S_43
    reason: "images are pinned to immutable release tags in ECR (tag immutability on); promotion copies tags, digests would make every promotion diff unreadable"
extraEgress: []
{{- end -}}

{{/* The render context with defaults merged under the chart's values. */}}
{{- define "shopflow-service.context" -}}
{{- $values := mergeOverwrite (fromYaml (include "shopflow-service.defaults" .)) (deepCopy .Values) -}}
{{- toYaml (dict "Values" $values) -}}
{{- end -}}
