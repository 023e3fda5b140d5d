// IoT Hub for the reboot invoker: shared access policies, the built-in `events`
// endpoint, twin-change routing and the consumer groups that read it.

@description('IoT Hub name (globally unique, 3-50 characters).')
@minLength(3)
@maxLength(50)
param name string

param location string

param tags object = {}

// Basic tiers (B1-B3) have no direct methods and no twins, so they are not offered.
@description('IoT Hub SKU. F1 is limited to one per subscription and 2 partitions.')
@allowed([
  'F1'
  'S1'
  'S2'
  'S3'
])
param skuName string = 'S1'

@minValue(1)
param skuCapacity int = 1

@description('Partitions of the built-in events endpoint. Fixed once the hub exists.')
@minValue(2)
@maxValue(32)
param eventsPartitionCount int = 4

@description('Retention of the built-in events endpoint, in days.')
@minValue(1)
@maxValue(7)
param eventsRetentionDays int = 1

@description('Consumer groups on the built-in events endpoint (one per reader, so readers never steal partitions from each other).')
@minLength(1)
param consumerGroups string[]

@description('Routing condition for twin-change events sent to the built-in endpoint.')
param twinChangeRouteCondition string = 'true'

resource hub 'Microsoft.Devices/IotHubs@2023-06-30' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    capacity: skuCapacity
  }
  properties: {
    // Listing policies replaces the hub's whole list, so the five defaults are
    // repeated here; the last two are ours (the rights strings must be spelled
    // exactly as the enum). serviceAndRegistryReadWrite is the function app's
    // with SAS: fleet reboots create and cancel jobs (RegistryWrite), read
    // them (RegistryRead), and query devices.jobs and twins (ServiceConnect);
    // no default policy has exactly these rights. The local hub creates the
    // same policies (localhub/internal/registry/policies.go).
    authorizationPolicies: [
      {
        keyName: 'iothubowner'
        rights: 'RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect'
      }
      {
        keyName: 'service'
        rights: 'ServiceConnect'
      }
      {
        keyName: 'device'
        rights: 'DeviceConnect'
      }
      {
        keyName: 'registryRead'
        rights: 'RegistryRead'
      }
      {
        keyName: 'registryReadWrite'
        rights: 'RegistryRead, RegistryWrite'
      }
      {
        keyName: 'serviceAndRegistryRead'
        rights: 'RegistryRead, ServiceConnect'
      }
      {
        keyName: 'serviceAndRegistryReadWrite'
        rights: 'RegistryRead, RegistryWrite, ServiceConnect'
      }
    ]
    eventHubEndpoints: {
      events: {
        partitionCount: eventsPartitionCount
        retentionTimeInDays: eventsRetentionDays
      }
    }
    routing: {
      routes: [
        {
          name: 'TwinChangesToEvents'
          source: 'TwinChangeEvents'
          condition: twinChangeRouteCondition
          endpointNames: [
            'events'
          ]
          isEnabled: true
        }
      ]
      // Once any route exists, telemetry stops reaching `events` unless the
      // fallback route is enabled; it is disabled when omitted.
      fallbackRoute: {
        name: '$fallback'
        source: 'DeviceMessages'
        condition: 'true'
        endpointNames: [
          'events'
        ]
        isEnabled: true
      }
    }
    // The built-in endpoint and devices still authenticate with SAS keys, so
    // local (key) auth must stay on; the function app itself uses Entra ID.
    disableLocalAuth: false
    minTlsVersion: '1.2'
  }
}

resource consumerGroup 'Microsoft.Devices/IotHubs/eventHubEndpoints/ConsumerGroups@2023-06-30' = [
  for group in consumerGroups: {
    name: '${hub.name}/events/${group}'
    properties: {
      name: group
    }
  }
]

output name string = hub.name
output hostName string = hub.properties.hostName
output eventHubCompatibleName string = hub.properties.eventHubEndpoints.events.path
