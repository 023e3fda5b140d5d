// The custom role the function app's identity gets on the IoT hub: invoke
// direct methods, read twins and write twin tags (the Idempotency-Key
// claim, fleet reboots' membership and record), create, read and cancel
// jobs (fleet reboots' waves), nothing else. Deployed once per resource
// group, apart from main.bicep, because writing a role definition needs
// Microsoft.Authorization/roleDefinitions/write (Owner or User Access
// Administrator), while the routine deployment needs only Contributor plus
// Role Based Access Control Administrator. infra/deploy.sh deploys it when
// it is missing; see docs/deploy.md ("Permissions").
targetScope = 'resourceGroup'

// The same name modules/roles.bicep assigns; infra/drift_test.go keeps the
// two in step.
var roleDefinitionName = guid(resourceGroup().id, 'iothub-reboot-invoker')

// What the reboot invoker does on the hub: invoke the reboot method; read
// twins (GET /twins/{id} and POST /devices/query both need twins/read, and
// so does a devices.jobs query); PATCH a twin's tags, where RebootDevice
// claims an Idempotency-Key before it invokes and fleet reboots keep their
// state; PUT /jobs/v2/{id} and POST /jobs/v2/{id}/cancel (jobs/write,
// "create or update any job") and GET /jobs/v2/{id} (jobs/read) for the
// waves of a fleet reboot (docs/function-app.md).
resource rebootInvoker 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: roleDefinitionName
  properties: {
    roleName: 'IoT Hub reboot invoker (${uniqueString(resourceGroup().id)})'
    description: 'Invoke direct methods, read and write twins, create, read and cancel jobs on IoT hubs in this resource group.'
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
          'Microsoft.Devices/IotHubs/twins/write'
          'Microsoft.Devices/IotHubs/jobs/read'
          'Microsoft.Devices/IotHubs/jobs/write'
        ]
        notDataActions: []
      }
    ]
  }
}

output roleDefinitionId string = rebootInvoker.id
