// IoT Hub device reboots from Go on Azure Functions: the hub, its policies and
// routing, and the Flex Consumption function app that invokes `reboot` and
// records `lastReboot` twin changes. Deploy with infra/deploy.sh or the
// deploy workflow; see docs/deploy.md.
targetScope = 'resourceGroup'

@description('Short lowercase prefix for resource names (letters and digits).')
@minLength(3)
@maxLength(11)
param namePrefix string = 'reboot'

param location string = resourceGroup().location

param tags object = {}

@description('IoT Hub SKU. Basic tiers lack direct methods and twins.')
@allowed([
  'F1'
  'S1'
  'S2'
  'S3'
])
param iotHubSku string = 'S1'

@minValue(1)
param iotHubCapacity int = 1

@description('Partitions of the built-in events endpoint (fixed at creation; F1 allows 2).')
@minValue(2)
@maxValue(32)
param eventsPartitionCount int = 4

@description('Retention of the built-in events endpoint, in days.')
@minValue(1)
@maxValue(7)
param eventsRetentionDays int = 1

@description('Consumer group the deployed TwinChangeProcessor reads.')
param functionsConsumerGroup string = 'functions'

@description('Consumer group for `func start` on a developer machine, so it never takes partitions from the deployed app.')
param localDevConsumerGroup string = 'localdev'

@description('identity: the app calls IoT Hub with its managed identity (IOTHUB_HOSTNAME). sharedAccessPolicy: it uses the serviceAndRegistryReadWrite connection string from Key Vault (IOTHUB_CONNECTION_STRING).')
@allowed([
  'identity'
  'sharedAccessPolicy'
])
param iotHubServiceAuth string = 'identity'

@description('Role of the app identity on the hub: custom (direct methods + twin read only; infra/iothub-role.bicep must have created it, which infra/deploy.sh does) or the built-in IoT Hub Data Contributor (the whole data plane; no custom role needed).')
@allowed([
  'custom'
  'IoTHubDataContributor'
])
param iotHubDataRole string = 'custom'

@description('Go duration after which RebootStatus reports a reboot as timed out.')
param rebootStatusDeadline string = '10m'

@description('NCRONTAB schedule (with seconds) of FleetRebootTimer, which moves fleet reboots on. Each run costs at least one twin query; S1 allows 20 a minute per unit.')
@minLength(9)
param fleetRebootSchedule string = '*/10 * * * * *'

@description('Flex Consumption stack name; see modules/functionapp.bicep.')
param functionRuntimeName string = 'custom'

@description('Flex Consumption stack version for functionRuntimeName.')
param functionRuntimeVersion string = '1.0'

@description('Flex Consumption instance memory, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Flex Consumption scale-out limit: 40 (the platform minimum) to 1000.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Key Vault purge protection (irreversible once on).')
param keyVaultPurgeProtection bool = false

var token = uniqueString(resourceGroup().id, namePrefix)
var names = {
  iotHub: '${namePrefix}-hub-${token}'
  storage: take(toLower('st${replace(namePrefix, '-', '')}${token}'), 24)
  keyVault: take(toLower('kv-${namePrefix}-${token}'), 24)
  logAnalytics: '${namePrefix}-log-${token}'
  appInsights: '${namePrefix}-appi-${token}'
  plan: '${namePrefix}-plan-${token}'
  functionApp: '${namePrefix}-func-${token}'
}

module iotHub 'modules/iothub.bicep' = {
  name: 'iothub'
  params: {
    name: names.iotHub
    location: location
    tags: tags
    skuName: iotHubSku
    skuCapacity: iotHubCapacity
    eventsPartitionCount: eventsPartitionCount
    eventsRetentionDays: eventsRetentionDays
    consumerGroups: [
      functionsConsumerGroup
      localDevConsumerGroup
    ]
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: tags
    deploymentContainerName: 'app-package'
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    location: location
    tags: tags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: tags
    iotHubName: iotHub.outputs.name
    storeServiceConnectionString: iotHubServiceAuth == 'sharedAccessPolicy'
    enablePurgeProtection: keyVaultPurgeProtection
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    planName: names.plan
    name: names.functionApp
    location: location
    tags: tags
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    runtimeName: functionRuntimeName
    runtimeVersion: functionRuntimeVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: functionApp.outputs.principalId
    iotHubName: iotHub.outputs.name
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    iotHubDataRole: iotHubDataRole
  }
}

// Every setting the app reads in Azure (names agreed with the function app;
// infra/drift_test.go fails when they drift). Secrets are Key Vault references
// only; IoT Hub, storage and telemetry use the app's identity.
var baseSettings = {
  AzureWebJobsStorage__accountName: storage.outputs.name
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
  IOTHUB_HOSTNAME: iotHub.outputs.hostName
  IOTHUB_EVENTHUB_CONNECTION: '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=${keyVault.outputs.eventHubConnectionEntry})'
  IOTHUB_EVENTHUB_NAME: iotHub.outputs.eventHubCompatibleName
  IOTHUB_CONSUMER_GROUP: functionsConsumerGroup
  REBOOT_STATUS_DEADLINE: rebootStatusDeadline
  FLEET_REBOOT_SCHEDULE: fleetRebootSchedule
}

// The handler prefers a connection string when one is set, so it is only set
// when SAS is chosen.
var sasSettings = iotHubServiceAuth == 'sharedAccessPolicy' ? {
  IOTHUB_CONNECTION_STRING: '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=${keyVault.outputs.serviceConnectionEntry})'
} : {}

module functionAppSettings 'modules/appsettings.bicep' = {
  name: 'appsettings'
  params: {
    functionAppName: functionApp.outputs.name
    appSettings: union(baseSettings, sasSettings)
  }
  dependsOn: [
    roles
  ]
}

output iotHubName string = iotHub.outputs.name
output iotHubHostName string = iotHub.outputs.hostName
output functionAppName string = functionApp.outputs.name
output functionAppUrl string = 'https://${functionApp.outputs.defaultHostName}'
output keyVaultName string = keyVault.outputs.name
