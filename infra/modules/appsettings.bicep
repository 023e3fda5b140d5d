// The function app's app settings, written as one resource so the set is
// exactly what main.bicep declares (settings added by hand are removed on the
// next deployment). Deployed after the identity's role assignments, so the
// @Microsoft.KeyVault(...) references resolve when the app restarts.

param functionAppName string

@description('Every app setting, by name. Values must hold no key in plain text.')
param appSettings object

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: appSettings
}
