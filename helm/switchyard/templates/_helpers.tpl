{{- define "switchyard.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchyard.labels" -}}
app.kubernetes.io/name: switchyard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "switchyard.selector" -}}
app.kubernetes.io/name: switchyard
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "switchyard.image" -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end -}}

{{/* etcd client endpoints, comma-separated */}}
{{- define "switchyard.etcd" -}}
{{- if .Values.etcd.bundled -}}
{{- $scheme := ternary "https" "http" .Values.tls.enabled -}}
{{- $name := include "switchyard.fullname" . -}}
{{- $eps := list -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $eps = append $eps (printf "%s://%s-etcd-%d.%s-etcd:2379" $scheme $name $i $name) -}}
{{- end -}}
{{- join "," $eps -}}
{{- else -}}
{{- join "," .Values.etcd.externalEndpoints -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.tlsSecret" -}}
{{- if .Values.tls.certManager.enabled -}}{{ include "switchyard.fullname" . }}-tls{{- else -}}{{ .Values.tls.existingSecret }}{{- end -}}
{{- end -}}

{{/* flags every role shares: etcd, cluster, TLS */}}
{{- define "switchyard.commonArgs" -}}
- --etcd={{ include "switchyard.etcd" . }}
- --cluster={{ .Values.cluster }}
{{- if .Values.tls.enabled }}
- --tls-cert=/etc/switchyard/tls/tls.crt
- --tls-key=/etc/switchyard/tls/tls.key
- --tls-ca=/etc/switchyard/tls/ca.crt
{{- end }}
{{- end -}}

{{/* where coordinators and expert nodes keep what they fetch of a model URL */}}
{{- define "switchyard.cacheArg" -}}
- --cache-dir={{ .Values.cache.mountPath }}
{{- end -}}

{{- define "switchyard.modelArg" -}}
{{- if eq .Values.model.source "url" -}}
- --model={{ required "model.url is required when model.source is url" .Values.model.url }}
{{- else -}}
- --model=/models/{{ ternary .Values.model.pvc.file (base .Values.model.hostPath.path) (eq .Values.model.source "pvc") }}
{{- end -}}
{{- end -}}

{{- define "switchyard.env" -}}
- name: POD_IP
  valueFrom: {fieldRef: {fieldPath: status.podIP}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
{{- if .Values.tls.enabled }}
{{- /* from the environment, never the command line, where ps shows it */}}
- name: SWITCHYARD_GOSSIP_KEY
  valueFrom: {secretKeyRef: {name: {{ .Values.tls.gossipKeySecret }}, key: gossip-key}}
{{- end }}
{{- end -}}

{{- define "switchyard.volumeMounts" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/switchyard/tls
  readOnly: true
{{- end }}
{{- if ne .Values.model.source "url" }}
- name: model
  mountPath: /models
  readOnly: true
{{- end }}
- name: cache
  mountPath: {{ .Values.cache.mountPath }}
{{- end -}}

{{- define "switchyard.volumes" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "switchyard.tlsSecret" . }}
{{- end }}
{{- if eq .Values.model.source "pvc" }}
- name: model
  persistentVolumeClaim:
    claimName: {{ .Values.model.pvc.claimName }}
    readOnly: true
{{- else if eq .Values.model.source "hostPath" }}
- name: model
  hostPath:
    path: {{ dir .Values.model.hostPath.path }}
    type: Directory
{{- end }}
- name: cache
{{- if .Values.cache.pvc.claimName }}
  persistentVolumeClaim:
    claimName: {{ .Values.cache.pvc.claimName }}
{{- else }}
  emptyDir:
    sizeLimit: {{ .Values.cache.sizeLimit }}
{{- end }}
{{- end -}}

{{/* the restricted Pod Security Standard, for every pod */}}
{{- define "switchyard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "switchyard.securityContext" -}}
runAsNonRoot: true
runAsUser: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
