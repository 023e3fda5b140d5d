// Parameters for infra/main.bicep. Override per environment with
// `az deployment group create ... --parameters infra/main.bicepparam --parameters name=value`.
using './main.bicep'

param namePrefix = 'reboot'

// S1 or higher: Basic tiers have no direct methods and no twins.
param iotHubSku = 'S1'
param iotHubCapacity = 1
param eventsPartitionCount = 4
param eventsRetentionDays = 1

param functionsConsumerGroup = 'functions'
param localDevConsumerGroup = 'localdev'

// Managed identity to IoT Hub, least-privilege custom role.
param iotHubServiceAuth = 'identity'
param iotHubDataRole = 'custom'

param rebootStatusDeadline = '10m'

// Every 10 s: six of S1's 20 twin queries a minute when idle.
param fleetRebootSchedule = '*/10 * * * * *'

// Custom-handler stack on Flex Consumption; see docs/deploy.md if your region
// does not list it (az functionapp list-flexconsumption-runtimes).
param functionRuntimeName = 'custom'
param functionRuntimeVersion = '1.0'
