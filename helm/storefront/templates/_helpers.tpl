{{/* Names and labels, Bitnami-style. */}}
{{- define "storefront.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "storefront.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "storefront.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The chart's own labels, without commonLabels: for objects that add labels of their own. */}}
{{- define "storefront.chartLabels" -}}
app.kubernetes.io/name: {{ include "storefront.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Every object's labels: the chart's, then commonLabels (the schema refuses the chart's keys
there, so none is written twice). Never in a selector: selectors stay storefront.selector. */}}
{{- define "storefront.labels" -}}
{{ include "storefront.chartLabels" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The chart's labels and an object's own (ServiceMonitor, PrometheusRule, dashboards), which
win over commonLabels of the same key: (dict "root" $ "labels" .Values.serviceMonitor.labels) */}}
{{- define "storefront.labelsWith" -}}
{{ include "storefront.chartLabels" .root }}
{{- with merge (dict) (.labels | default dict) (.root.Values.commonLabels | default dict) }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "name" "auth") */}}
{{- define "storefront.selector" -}}
app.kubernetes.io/name: {{ include "storefront.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* An image reference with global.imageRegistry in place of its registry (the first path
element when it names a host: it has a "." or ":" or is localhost, as Docker reads it), or in
front of it when it names none: (dict "root" $ "image" "docker.io/library/postgres:15") */}}
{{- define "storefront.withRegistry" -}}
{{- $image := .image -}}
{{- $registry := dig "imageRegistry" "" (.root.Values.global | default dict) -}}
{{- if $registry -}}
{{- $first := first (splitList "/" $image) -}}
{{- if and (contains "/" $image) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $image = trimPrefix (printf "%s/" $first) $image -}}
{{- end -}}
{{- $image = printf "%s/%s" (trimSuffix "/" $registry) $image -}}
{{- end -}}
{{- $image -}}
{{- end -}}

{{/* A service's image, <repository>/<service>:<tag>, or @<digest> when
services.<service>.image.digest is set (the digest pins it; the tag is then not used). */}}
{{- define "storefront.image" -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if eq $tag "latest" -}}{{- fail "image.tag must not be latest: pin a version" -}}{{- end -}}
{{- $digest := dig "image" "digest" "" (index .root.Values.services .name) -}}
{{- $ref := printf "%s/%s:%s" .root.Values.image.repository .name $tag -}}
{{- if $digest -}}{{- $ref = printf "%s/%s@%s" .root.Values.image.repository .name $digest -}}{{- end -}}
{{- include "storefront.withRegistry" (dict "root" .root "image" $ref) -}}
{{- end -}}

{{- define "storefront.secretName" -}}
{{- required "secrets.existingSecret is required: the Secret holding database URLs, the NATS URL and keys" .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The pod's security context (podSecurityContext): by default the restricted Pod Security
Standard with the images' user 65532. A key set to null in values is left out (OpenShift assigns
its own UID and fsGroup: ci/openshift.yaml). */}}
{{- define "storefront.podSecurityContext" -}}
{{- toYaml (.Values.podSecurityContext | default dict) -}}
{{- end -}}

{{- define "storefront.containerSecurityContext" -}}
{{- toYaml (.Values.containerSecurityContext | default dict) -}}
{{- end -}}

{{/* Where a pod runs: nodeSelector, tolerations and affinity of the chart, each overridden by a
service's own when it has one (nodeSelector merged, the service's keys winning). Indented for a
pod spec's keys: (dict "root" $ "svc" $svc), or (dict "root" $) for the Jobs and CronJobs. */}}
{{- define "storefront.placement" -}}
{{- $v := .root.Values -}}
{{- $svc := .svc | default dict -}}
{{- with merge (dict) (dig "nodeSelector" (dict) $svc) ($v.nodeSelector | default dict) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with dig "tolerations" (list) $svc | default $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with dig "affinity" (dict) $svc | default $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A pod template's annotations beyond the chart's: podAnnotations, merged with a service's
own (the service's keys winning), without the chart's own keys: (dict "root" $ "svc" $svc). */}}
{{- define "storefront.podAnnotations" -}}
{{- $svc := .svc | default dict -}}
{{- with omit (merge (dict) (dig "podAnnotations" (dict) $svc) (.root.Values.podAnnotations | default dict)) "checksum/config" }}
{{- toYaml . }}
{{- end }}
{{- end -}}

{{- define "storefront.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- include "storefront.fullname" . -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The services that own a database, and its name (also its owner's): the CloudNativePG
Clusters, the migration Jobs and the backups go by this list. */}}
{{- define "storefront.databases" -}}
auth: auth
catalog-order: catalog
{{- end -}}

{{/* The CloudNativePG Cluster of one database, <fullname>-<database>-db: (dict "root" $ "db"
"catalog"). CloudNativePG wants a DNS-1035 label of at most 50 characters (its Services and
Secrets add -rw, -ro, -app). */}}
{{- define "storefront.cnpgCluster" -}}
{{- $name := printf "%s-%s-db" (include "storefront.fullname" .root) .db -}}
{{- if or (gt (len $name) 50) (not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name)) -}}
{{- fail (printf "the CloudNativePG Cluster name %q must start with a letter and have at most 50 characters: shorten the release name or set fullnameOverride" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/* The release's CloudNativePG Clusters, database → Cluster name: one per enabled service that
has a database, with postgresql.cloudnativepg.enabled; none otherwise. A map, through fromYaml. */}}
{{- define "storefront.cnpgClusters" -}}
{{- if .Values.postgresql.cloudnativepg.enabled }}
{{- range $service, $db := include "storefront.databases" . | fromYaml }}
{{- if (index $.Values.services $service).enabled }}
{{ $db }}: {{ include "storefront.cnpgCluster" (dict "root" $ "db" $db) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Where catalog-order's read replica URL (DATABASE_READ_URL) comes from: "cloudnativepg"
(composed for the catalog Cluster's replicas, <cluster>-ro), "secret"
(secrets.keys.catalogDatabaseReadUrl), or "" (none: every read goes to the primary). */}}
{{- define "storefront.catalogReads" -}}
{{- $pg := .Values.postgresql.cloudnativepg -}}
{{- if and $pg.enabled $pg.catalogReadReplica -}}
{{- if .Values.secrets.keys.catalogDatabaseReadUrl -}}
{{- fail "set either postgresql.cloudnativepg.catalogReadReplica or secrets.keys.catalogDatabaseReadUrl, not both" -}}
{{- end -}}
{{- if lt (int $pg.instances) 2 -}}
{{- fail "postgresql.cloudnativepg.catalogReadReplica needs instances >= 2: a Cluster of one has no replica to read from" -}}
{{- end -}}
cloudnativepg
{{- else if .Values.secrets.keys.catalogDatabaseReadUrl -}}
secret
{{- end -}}
{{- end -}}

{{/* A Cluster's spec from postgresql.cloudnativepg, before its extraSpec: (dict "root" $ "db"
"catalog"). The database and its owner share the name (CloudNativePG's -app Secret is the
owner's). */}}
{{- define "storefront.cnpgSpec" -}}
{{- $pg := .root.Values.postgresql.cloudnativepg -}}
instances: {{ $pg.instances }}
{{- with $pg.imageName }}
imageName: {{ include "storefront.withRegistry" (dict "root" $.root "image" .) }}
{{- end }}
bootstrap:
  initdb:
    database: {{ .db }}
    owner: {{ .db }}
storage:
  size: {{ $pg.storage.size }}
  {{- with $pg.storage.storageClass }}
  storageClass: {{ . }}
  {{- end }}
resources:
  {{- toYaml $pg.resources | nindent 2 }}
{{- if or $pg.parameters $pg.synchronousReplicas }}
postgresql:
  {{- with $pg.parameters }}
  parameters:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- /* Quorum-based synchronous replication: a commit waits for this many standbys. */}}
  {{- if $pg.synchronousReplicas }}
  synchronous:
    method: any
    number: {{ $pg.synchronousReplicas }}
  {{- end }}
{{- end }}
{{- end -}}
