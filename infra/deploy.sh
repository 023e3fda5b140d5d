#!/usr/bin/env bash
# Deploy the whole system with the Azure CLI: the custom IoT Hub role (once),
# the Bicep template, then the function app's zip. The deploy workflow
# (.github/workflows/deploy.yml) runs this script too.
#
#   az login
#   infra/deploy.sh <resource-group> <location> [extra az deployment args...]
#
# e.g. infra/deploy.sh rg-reboot westeurope --parameters namePrefix=contoso
#
# Needs az (2.60+), go and make. Permissions on the resource group (see
# docs/deploy.md, "Permissions"): Contributor + Role Based Access Control
# Administrator for every run; creating the custom IoT Hub role, which the
# first run does, needs Owner or User Access Administrator once.
#
# DEPLOY_ROLE_WAIT (seconds, default 600) bounds how long the zip deployment
# waits for the app's new storage role to take effect.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
cd "$(dirname "$0")/.."
resource_group=$1
location=$2
shift 2

# The custom role's roleName starts with this (infra/iothub-role.bicep;
# infra/roles_test.go keeps the two in step).
readonly role_prefix='IoT Hub reboot invoker ('
readonly role_deployment=iothub-reboot-invoker-role
role_wait=${DEPLOY_ROLE_WAIT:-600}
[[ $role_wait =~ ^[0-9]+$ ]] || { echo "deploy.sh: DEPLOY_ROLE_WAIT must be a number of seconds, got '$role_wait'" >&2; exit 2; }

die() {
  echo "deploy.sh: $*" >&2
  exit 1
}

for tool in az go make; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
az account show --output none 2>/dev/null || die "run 'az login' first"

# uses_custom_role tells whether this deployment assigns the custom role:
# iotHubDataRole is 'custom' unless the arguments or main.bicepparam say
# IoTHubDataContributor.
uses_custom_role() {
  local arg
  for arg in "$@"; do
    [[ $arg == *iotHubDataRole=IoTHubDataContributor* ]] && return 1
  done
  ! grep -Eq "^param iotHubDataRole = 'IoTHubDataContributor'" infra/main.bicepparam
}

# find_custom_role prints the name of the custom role assignable in the
# resource group $1 (by id), if there is one.
find_custom_role() {
  local rg_id list name scopes scope
  rg_id=$(lower "$1")
  list=$(az role definition list --custom-role-only true --scope "$1" \
    --query "[?starts_with(roleName, '$role_prefix')].[name, join(' ', assignableScopes)]" --output tsv) || return 1
  while IFS=$'\t' read -r name scopes; do
    for scope in $scopes; do
      if [[ $(lower "$scope") == "$rg_id" ]]; then
        echo "$name"
        return
      fi
    done
  done <<<"$list"
}

# lower lowercases $1: resource ids compare case-insensitively (and macOS's
# bash 3.2 has no ${x,,}).
lower() {
  tr '[:upper:]' '[:lower:]' <<<"$1"
}

# ensure_custom_role creates the custom IoT Hub role in the resource group
# unless it exists. Writing a role definition is the one step that needs
# Owner or User Access Administrator, so it is done once, apart from the
# routine deployment.
ensure_custom_role() {
  local rg_id=$1 existing out
  existing=$(find_custom_role "$rg_id") || die "could not list the role definitions of $resource_group"
  if [[ -n $existing ]]; then
    echo "   custom role exists ($existing); to change its permissions, redeploy infra/iothub-role.bicep"
    return
  fi
  echo "   creating it (needs Microsoft.Authorization/roleDefinitions/write: Owner or User Access Administrator)"
  if ! out=$(az deployment group create --resource-group "$resource_group" --name "$role_deployment" \
    --template-file infra/iothub-role.bicep --output none 2>&1); then
    printf '%s\n' "$out" >&2
    cat >&2 <<EOF
deploy.sh: could not create the custom IoT Hub role in $resource_group.
  Writing a role definition needs Microsoft.Authorization/roleDefinitions/write,
  which Owner and User Access Administrator have and Contributor and Role Based
  Access Control Administrator do not. Either:
  - have an Owner of the resource group create it once, then run this again:
      az deployment group create -g $resource_group -n $role_deployment -f infra/iothub-role.bicep
  - or deploy with --parameters iotHubDataRole=IoTHubDataContributor: no custom
    role, but the app may then use the hub's whole data plane (create and
    delete devices, update twins, send cloud-to-device messages).
EOF
    exit 1
  fi
}

# zip_deploy uploads dist/app.zip to the Flex Consumption app $1. Flex writes
# the package to its deployment container with the app's own identity, whose
# Storage Blob Data Owner assignment the template has just created; until
# that assignment takes effect (usually a minute or two, sometimes longer)
# storage answers 403. So a 403 is retried, with growing pauses, for up to
# $role_wait seconds; any other failure stops at once.
zip_deploy() {
  local app=$1 attempt=1 waited=0 delay=15 out
  while :; do
    # --build-remote false: the zip holds a built binary, and az would
    # otherwise build remotely whenever the app's stack is python.
    if out=$(az functionapp deployment source config-zip --resource-group "$resource_group" --name "$app" \
      --src dist/app.zip --build-remote false --output none 2>&1); then
      return
    fi
    # A 403 on its own, not inside an id (deployment ids are GUIDs).
    if ! grep -Eqi '(^|[^[:alnum:]-])403([^[:alnum:]-]|$)|forbidden|AuthorizationPermissionMismatch|AuthorizationFailure|not authorized' <<<"$out"; then
      printf '%s\n' "$out" >&2
      die "zip deployment of $app failed (not a permission error, so not retried)"
    fi
    if ((waited + delay > role_wait)); then
      printf '%s\n' "$out" >&2
      die "storage still refuses $app's identity after ${waited}s and $attempt attempts.
  Check that the app's identity has Storage Blob Data Owner on the storage account
  (az role assignment list --assignee <principalId> --all -o table), then run this
  script again; DEPLOY_ROLE_WAIT=<seconds> waits longer."
    fi
    echo "   attempt $attempt: storage refused the app's identity (403): its new role is not in effect yet; retrying in ${delay}s (${waited}s of ${role_wait}s waited)"
    sleep "$delay"
    waited=$((waited + delay))
    attempt=$((attempt + 1))
    delay=$((delay * 2 > 60 ? 60 : delay * 2))
  done
}

echo "== Build and package the function app"
make build package

# The custom-handler stack on Flex Consumption is regional; a version that is
# not in the region's catalog deploys fine but the host never starts.
echo "== Check the Flex Consumption custom-handler stack in $location"
if ! az functionapp list-flexconsumption-runtimes --location "$location" --runtime custom --output table 2>/dev/null; then
  echo "warning: could not list Flex Consumption 'custom' runtimes in $location;" >&2
  echo "         if the deployment fails or the host does not start, see docs/deploy.md (runtime stack)." >&2
fi

echo "== Resource group $resource_group ($location)"
rg_id=$(az group create --name "$resource_group" --location "$location" --query id --output tsv)

if uses_custom_role "$@"; then
  echo "== Custom IoT Hub role (infra/iothub-role.bicep)"
  ensure_custom_role "$rg_id"
fi

echo "== Deploy infrastructure (infra/main.bicep)"
outputs=$(az deployment group create \
  --resource-group "$resource_group" \
  --name "reboot-$(date +%Y%m%d%H%M%S)" \
  --template-file infra/main.bicep \
  --parameters infra/main.bicepparam \
  "$@" \
  --query '[properties.outputs.functionAppName.value, properties.outputs.functionAppUrl.value, properties.outputs.iotHubName.value]' \
  --output tsv)
{
  read -r function_app
  read -r function_url
  read -r iot_hub
} <<<"$outputs"
[[ -n $function_app && -n $function_url && -n $iot_hub ]] || die "the deployment returned no outputs: $outputs"

echo "== Deploy the function app ($function_app)"
# Flex Consumption takes the zip through One Deploy; the CLI uses your Entra
# ID login (publishing credentials are disabled on the app).
zip_deploy "$function_app"

cat <<EOF

Deployed.
  IoT Hub:       $iot_hub
  Function app:  $function_app
  URL:           $function_url/api/devices/{deviceId}/reboot

Function key (send it as the x-functions-key header):
  az functionapp keys list -g $resource_group -n $function_app --query functionKeys.default -o tsv

Try it:
  curl -i -X POST -H "x-functions-key: \$KEY" $function_url/api/devices/<deviceId>/reboot
EOF

if [[ -n ${GITHUB_STEP_SUMMARY:-} ]]; then
  {
    echo "### Deployed"
    echo "- IoT Hub: \`$iot_hub\`"
    echo "- Function app: \`$function_app\` at $function_url"
    echo "- Function key: \`az functionapp keys list -g $resource_group -n $function_app --query functionKeys.default -o tsv\`"
  } >>"$GITHUB_STEP_SUMMARY"
fi
