{{/* The objects' name: RELEASE-sshpod, or the release name when it already says sshpod. */}}
{{- define "sshpod.fullname" -}}
{{- if contains "sshpod" .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-sshpod" .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sshpod.selectorLabels" -}}
app.kubernetes.io/name: sshpod
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "sshpod.labels" -}}
{{ include "sshpod.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The labels of the login pods sshpod starts (not matched by the Deployment's selector). */}}
{{- define "sshpod.loginLabels" -}}
app.kubernetes.io/name: sshpod
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: login
{{- end -}}

{{- define "sshpod.hostKeySecret" -}}
{{- .Values.hostKeys.existingSecret | default (printf "%s-hostkeys" (include "sshpod.fullname" .)) -}}
{{- end -}}

{{- define "sshpod.caSecret" -}}
{{- .Values.ssh.existingSecret | default (printf "%s-ca" (include "sshpod.fullname" .)) -}}
{{- end -}}

{{- define "sshpod.trustsCA" -}}
{{- if or .Values.ssh.ca_key_pub .Values.ssh.existingSecret }}true{{ end -}}
{{- end -}}

{{/* Refusals that the schema cannot word clearly. */}}
{{- define "sshpod.refusals" -}}
{{- if .Values.ssh.ca_key -}}
{{- fail "ssh.ca_key is refused: sshpod needs only the CA's public key (ssh.ca_key_pub). Keep the CA's private key off the cluster and sign certificates where it lives (ssh-keygen -s ca_key -I ID -n USER -V +16w key.pub)." -}}
{{- end -}}
{{- end -}}

{{/* sshpod's configuration: the seed values mapped onto its sections, then `config` over it. */}}
{{- define "sshpod.config" -}}
{{- $publicKey := dict "method" "authorizedKeys" "authorizedKeys" (dict "file" "/etc/sshpod/authorized_keys/%u") -}}
{{- if include "sshpod.trustsCA" . -}}
{{- $_ := set $publicKey "trustedUserCAKeys" "/etc/sshpod/ca/ca_key_pub" -}}
{{- end -}}
{{- if .Values.ssh.revokedKeysSecret -}}
{{- $_ := set $publicKey "revokedKeys" "/etc/sshpod/revoked/revoked_keys" -}}
{{- end -}}
{{- $identity := dict "enable" true "uid" (int .Values.userID) "sudo" .Values.privileged -}}
{{- with .Values.hostName -}}
{{- $_ := set $identity "hostname" . -}}
{{- end -}}
{{- $mounts := list -}}
{{- range .Values.extraMounts -}}
{{- $m := dict "name" .name "path" .path -}}
{{- with .size }}{{ $_ := set $m "size" . }}{{ end -}}
{{- with (.storageClassName | default .className) }}{{ $_ := set $m "storageClassName" . }}{{ end -}}
{{- with .scope }}{{ $_ := set $m "scope" . }}{{ end -}}
{{- if hasKey . "readOnly" }}{{ $_ := set $m "readOnly" .readOnly }}{{ end -}}
{{- $mounts = append $mounts $m -}}
{{- end -}}
{{- $homes := dict "enable" true "size" .Values.homeSize "storageClassName" .Values.homeStorageClassName "extraMounts" $mounts "customizeRepo" .Values.customizeRepo "customizeRepoCommand" .Values.customizeRepoCommand "customizeCommand" .Values.customizeCommand -}}
{{- $container := dict "name" "shell" "image" (printf "%s:%s" .Values.image.repository (toString .Values.image.tag)) "imagePullPolicy" .Values.image.pullPolicy -}}
{{- $spec := dict "automountServiceAccountToken" false "enableServiceLinks" false "containers" (list $container) -}}
{{- with .Values.image.pullSecrets -}}
{{- $secrets := list -}}
{{- range . }}{{ $secrets = append $secrets (ternary (dict "name" .) . (kindIs "string" .)) }}{{ end -}}
{{- $_ := set $spec "imagePullSecrets" $secrets -}}
{{- end -}}
{{- $metadata := dict "namespace" .Release.Namespace "generateName" (printf "%s-" (include "sshpod.fullname" .)) "labels" (include "sshpod.loginLabels" . | fromYaml) -}}
{{- $config := dict
  "ssh" (dict "listen" "0.0.0.0:2222" "hostkeys" (list "/etc/sshpod/hostkey/ssh_host_ed25519_key"))
  "health" (dict "enable" true "listen" "0.0.0.0:7000")
  "metrics" (dict "enable" true "listen" "0.0.0.0:9100")
  "auth" (dict "publicKey" $publicKey)
  "backend" "kubernetes"
  "kubernetes" (dict "pod" (dict "metadata" $metadata "spec" $spec "mode" .Values.mode) "timeouts" (dict "podStart" "60s"))
  "identity" $identity
  "homes" $homes
-}}
{{- mergeOverwrite $config (deepCopy .Values.config) | toYaml -}}
{{- end -}}
