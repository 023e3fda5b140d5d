// Least-privilege role assignments for the function app's system-assigned
// identity. A module of its own because role assignment names must be known at
// the start of a deployment, and the principal id is only known here, as a
// parameter.

@description('Object id of the function app identity.')
param principalId string

param iotHubName string

param storageAccountName string

param keyVaultName string

param appInsightsName string

@description('custom: the IoT Hub reboot invoker role of infra/iothub-role.bicep (direct methods and twin read only), which must exist already. IoTHubDataContributor: the built-in role (the whole data plane).')
@allowed([
  'custom'
  'IoTHubDataContributor'
])
param iotHubDataRole string = 'custom'

// Built-in role definition ids, from Azure's built-in roles reference (see
// docs/deploy.md, "Sources"); infra/drift_test.go checks each id against its
// name.
var roleIds = {
  iotHubDataContributor: '4fc6c259-987e-4a07-842e-c321cc9d413f'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// The custom role is created apart, by infra/iothub-role.bicep, under this
// same name: writing a role definition here would make every deployment
// need Microsoft.Authorization/roleDefinitions/write.
var rebootInvokerRoleName = guid(resourceGroup().id, 'iothub-reboot-invoker')

resource hub 'Microsoft.Devices/IotHubs@2023-06-30' existing = {
  name: iotHubName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var iotHubRoleDefinitionId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', iotHubDataRole == 'custom' ? rebootInvokerRoleName : roleIds.iotHubDataContributor)

resource iotHubAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: hub
  name: guid(hub.id, principalId, iotHubDataRole)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: iotHubRoleDefinitionId
  }
}

// Identity-based AzureWebJobsStorage: host locks and keys, Event Hubs
// checkpoints and the Flex deployment container are blobs (Storage Blob Data
// Owner); the host's diagnostic events are tables (Storage Table Data
// Contributor). No queue role: only the blob trigger and Durable Functions
// use queues here, and the app has neither. infra/drift_test.go derives this
// set from functions/*/function.json.
resource storageBlobAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, principalId, roleIds.storageBlobDataOwner)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
  }
}

resource storageTableAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, principalId, roleIds.storageTableDataContributor)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
  }
}

resource secretsAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, principalId, roleIds.keyVaultSecretsUser)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
  }
}

resource telemetryAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: appInsights
  name: guid(appInsights.id, principalId, roleIds.monitoringMetricsPublisher)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
  }
}
