// Key Vault holding the IoT Hub connection strings the function app cannot
// avoid: the built-in Event Hub-compatible endpoint accepts SAS only. App
// settings reference these secrets with @Microsoft.KeyVault(...), so no key is
// stored in an app setting. Access is RBAC-only (see roles.bicep).

@minLength(3)
@maxLength(24)
param name string

param location string

param tags object = {}

@description('IoT Hub whose keys are copied into the vault.')
param iotHubName string

@description('Policy whose key reads the built-in endpoint. Receiving device-to-cloud events needs ServiceConnect only.')
param eventHubPolicyName string = 'service'

@description('Also store the service connection string (serviceAndRegistryReadWrite) for apps that authenticate to IoT Hub with SAS instead of Entra ID.')
param storeServiceConnectionString bool = false

@description('Policy whose key the service connection string uses: the function app needs ServiceConnect (direct methods, twin writes, queries), RegistryRead and RegistryWrite (jobs, for fleet reboots).')
param servicePolicyName string = 'serviceAndRegistryReadWrite'

@description('Purge protection cannot be turned off again once on; it also keeps the vault name taken for the retention period after deletion.')
param enablePurgeProtection bool = false

var eventHubSecretName = 'iothub-eventhub-connection'
var serviceSecretName = 'iothub-service-connection'

resource hub 'Microsoft.Devices/IotHubs@2023-06-30' existing = {
  name: iotHubName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    // ARM rejects an explicit false, so the property is left out unless true.
    enablePurgeProtection: enablePurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
  }
}

// The keys are read during deployment and go straight into the vault; they are
// never outputs or app settings.
var events = hub.properties.eventHubEndpoints.events

resource eventHubConnection 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: eventHubSecretName
  properties: {
    contentType: 'Event Hub-compatible connection string of ${iotHubName}'
    value: 'Endpoint=${events.endpoint};SharedAccessKeyName=${eventHubPolicyName};SharedAccessKey=${listKeys(resourceId('Microsoft.Devices/IotHubs/IotHubKeys', iotHubName, eventHubPolicyName), '2023-06-30').primaryKey};EntityPath=${events.path}'
  }
}

resource serviceConnection 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (storeServiceConnectionString) {
  parent: vault
  name: serviceSecretName
  properties: {
    contentType: 'IoT Hub service connection string of ${iotHubName}'
    value: 'HostName=${hub.properties.hostName};SharedAccessKeyName=${servicePolicyName};SharedAccessKey=${listKeys(resourceId('Microsoft.Devices/IotHubs/IotHubKeys', iotHubName, servicePolicyName), '2023-06-30').primaryKey}'
  }
}

output name string = vault.name
output eventHubConnectionEntry string = eventHubConnection.name
output serviceConnectionEntry string = serviceSecretName
