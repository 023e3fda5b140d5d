// The Function App on the Flex Consumption plan (FC1, Linux) running the Go
// custom handler, with a system-assigned identity. App settings are written by
// appsettings.bicep after the identity has its roles, so Key Vault references
// resolve on first start.

param planName string

param name string

param location string

param tags object = {}

@description('Blob endpoint of the storage account holding the deployment container (ends with /).')
param storageBlobEndpoint string

param deploymentContainerName string

// Flex picks the stack from functionAppConfig.runtime, not from
// FUNCTIONS_WORKER_RUNTIME (which Flex rejects as an app setting). 'custom'
// is the custom-handler stack; the handler is a static binary, so any stack
// image can run it should a region not offer 'custom' (e.g. 'python'/'3.11').
@description('Flex Consumption runtime stack. Check: az functionapp list-flexconsumption-runtimes -l <region> --runtime custom')
param runtimeName string = 'custom'

@description('Flex Consumption runtime version for runtimeName. An uncatalogued value deploys but the host never starts.')
param runtimeVersion string = '1.0'

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// Flex Consumption accepts 40 to 1000 (docs/deploy.md, "Sources").
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      runtime: {
        name: runtimeName
        version: runtimeVersion
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
    }
  }
}

// Deployments authenticate with Entra ID (OIDC in CI, az login locally), so the
// publishing-profile credentials are switched off.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
output principalId string = site.identity.principalId
