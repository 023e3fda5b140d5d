#!/usr/bin/env bash
# Deploy the whole system with the Azure CLI: the Bicep template, then the
# function app's zip. The same steps as .github/workflows/deploy.yml, for
# people without GitHub Actions.
#
#   az login
#   infra/deploy.sh <resource-group> <location> [extra az deployment args...]
#
# e.g. infra/deploy.sh rg-reboot westeurope --parameters namePrefix=contoso
#
# Needs: az (2.60+), go, make, jq. You need Owner (or Contributor + Role Based
# Access Control Administrator) on the resource group.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 2 ]]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
resource_group=$1
location=$2
shift 2

for tool in az go make jq; do
  command -v "$tool" >/dev/null || { echo "deploy.sh: $tool is required" >&2; exit 1; }
done
az account show --output none 2>/dev/null || { echo "deploy.sh: run 'az login' first" >&2; exit 1; }

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
az group create --name "$resource_group" --location "$location" --output none

echo "== Deploy infrastructure (infra/main.bicep)"
outputs=$(az deployment group create \
  --resource-group "$resource_group" \
  --name "reboot-$(date +%Y%m%d%H%M%S)" \
  --template-file infra/main.bicep \
  --parameters infra/main.bicepparam \
  "$@" \
  --query properties.outputs --output json)
function_app=$(jq -r .functionAppName.value <<<"$outputs")
function_url=$(jq -r .functionAppUrl.value <<<"$outputs")
iot_hub=$(jq -r .iotHubName.value <<<"$outputs")

echo "== Deploy the function app ($function_app)"
# Flex Consumption accepts the zip through One Deploy; the CLI uses your
# Entra ID login (publishing credentials are disabled on the app).
az functionapp deployment source config-zip \
  --resource-group "$resource_group" --name "$function_app" --src dist/app.zip --output none

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
