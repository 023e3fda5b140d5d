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

@description('custom: a role with only directMethods/invoke/action and twins/read on the hub. IoTHubDataContributor: the built-in role (full data plane).')
@allowed([
  'custom'
  'IoTHubDataContributor'
])
param iotHubDataRole string = 'custom'

// Built-in role definition ids (Azure built-in roles reference).
var roleIds = {
  iotHubDataContributor: '4fc6c259-987e-4a07-842e-c321cc9d413f'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

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

// What the reboot invoker does on the hub: invoke the reboot method; read twins
// (GET /twins/{id} and POST /devices/query both need twins/read).
resource rebootInvokerRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (iotHubDataRole == 'custom') {
  name: guid(resourceGroup().id, 'iothub-reboot-invoker')
  properties: {
    roleName: 'IoT Hub reboot invoker (${uniqueString(resourceGroup().id)})'
    description: 'Invoke direct methods and read twins on IoT hubs in this resource group.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Devices/IotHubs/directMethods/invoke/action'
          'Microsoft.Devices/IotHubs/twins/read'
        ]
        notDataActions: []
      }
    ]
  }
}

var iotHubRoleDefinitionId = iotHubDataRole == 'custom' ? rebootInvokerRole.id : subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.iotHubDataContributor)

resource iotHubAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: hub
  name: guid(hub.id, principalId, iotHubDataRole)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: iotHubRoleDefinitionId
  }
}

// Identity-based AzureWebJobsStorage (host locks, keys, Event Hubs checkpoints)
// and the Flex deployment container: blob only, no queues or tables needed.
resource storageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, principalId, roleIds.storageBlobDataOwner)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
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
