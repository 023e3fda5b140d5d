package infra_test

// Self-tests: the drift checks must catch the mistakes they exist for.

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/infra/internal/bicep"
)

func TestHandlerSettingsExtraction(t *testing.T) {
	got := handlerSettings(t, "testdata/handlersrc", []string{"app", "cmd", "missing"})

	require.Equal(t, []string{
		"FROM_CMD", "FROM_CONST", "FROM_LOOKUPENV", "FROM_METHOD", "FROM_OS_GETENV", "FROM_TAG",
	}, sortedKeys(got))
	require.Equal(t, []string{"app/config.go:20"}, got["FROM_OS_GETENV"])
}

func TestPlainTextSecretDetection(t *testing.T) {
	tests := []struct {
		name    string
		setting string
		value   string
		wantBad bool
	}{
		{name: "key vault reference", setting: "EH_CONNECTION", value: `'@Microsoft.KeyVault(VaultName=${kv.outputs.name};SecretName=s)'`},
		{name: "identity-based connection", setting: "EH_CONNECTION__fullyQualifiedNamespace", value: `'ns.servicebus.windows.net'`},
		{name: "plain value", setting: "IOTHUB_HOSTNAME", value: `hub.outputs.hostName`},
		{name: "listKeys", setting: "IOTHUB_HOSTNAME", value: `listKeys(resourceId('a', 'b'), '2023-06-30').primaryKey`, wantBad: true},
		{name: "interpolated key", setting: "X", value: `'Endpoint=sb://x/;SharedAccessKey=${k}'`, wantBad: true},
		{name: "storage account key", setting: "AzureWebJobsStorage", value: `'DefaultEndpointsProtocol=https;AccountKey=${k}'`, wantBad: true},
		{name: "secure param", setting: "TOKEN", value: `apiToken`, wantBad: true},
		{name: "connection name, not a reference", setting: "EH_CONNECTION", value: `ehConnection`, wantBad: true},
		{name: "function.json connection, not a reference", setting: "MyHub", value: `someVar`, wantBad: true},
		{name: "reference prefix only", setting: "EH_CONNECTION", value: `'@Microsoft.KeyVault(${x}' + y`, wantBad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := bicep.Parse("var v = " + tt.value)
			require.NoError(t, err)
			d, _ := f.Find("var", "v")

			problem := plainTextSecret(tt.setting, d.Value, []string{"MyHub"}, map[string]bool{"apiToken": true})

			require.Equal(t, tt.wantBad, problem != "", "problem: %q", problem)
		})
	}
}

func TestRouteMatches(t *testing.T) {
	tests := []struct {
		route string
		want  bool
	}{
		{route: `{ source: 'TwinChangeEvents', endpointNames: [ 'events' ], isEnabled: true }`, want: true},
		{route: `{ source: 'TwinChangeEvents', endpointNames: [ 'events' ], isEnabled: false }`},
		{route: `{ source: 'TwinChangeEvents', endpointNames: [ 'other' ], isEnabled: true }`},
		{route: `{ source: 'DeviceMessages', endpointNames: [ 'events' ], isEnabled: true }`},
		{route: `{ source: 'TwinChangeEvents', isEnabled: true }`},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			f, err := bicep.Parse("var r = " + tt.route)
			require.NoError(t, err)
			d, _ := f.Find("var", "r")
			o, ok := d.Value.Object()
			require.True(t, ok)

			require.Equal(t, tt.want, routeMatches(o, "TwinChangeEvents"))
		})
	}
}

// The exceptions table only ever keeps settings out of Azure, each with a
// reason; a setting Flex rejects is never a platform setting we write.
func TestSettingExceptionsAreJustified(t *testing.T) {
	for name, p := range settingPlaces {
		require.NotEqual(t, required, p.azure, name)
		require.NotEmpty(t, p.why, name)
	}
	for _, name := range platformSettings {
		require.False(t, slices.Contains(flexRejected, name), name)
	}
}

func TestHostStorageRoles(t *testing.T) {
	base := []string{storageBlobDataOwner, storageTableDataContributor}
	tests := []struct {
		name     string
		bindings []map[string]any
		want     []string
	}{
		{name: "http and event hubs need the host's own", bindings: []map[string]any{{"type": "httpTrigger"}, {"type": "eventHubTrigger", "connection": "EH"}}, want: base},
		{name: "blob trigger uses queues and receipts", bindings: []map[string]any{{"type": "blobTrigger", "connection": "Other"}}, want: []string{storageAccountContributor, storageBlobDataOwner, storageQueueDataContributor, storageTableDataContributor}},
		{name: "queue trigger on host storage", bindings: []map[string]any{{"type": "queueTrigger"}}, want: []string{storageBlobDataOwner, storageQueueDataContributor, storageTableDataContributor}},
		{name: "queue output on host storage", bindings: []map[string]any{{"type": "queue", "connection": "AzureWebJobsStorage"}}, want: []string{storageBlobDataOwner, storageQueueDataContributor, storageTableDataContributor}},
		{name: "queue trigger on another account", bindings: []map[string]any{{"type": "queueTrigger", "connection": "Other"}}, want: base},
		{name: "durable functions", bindings: []map[string]any{{"type": "orchestrationTrigger"}}, want: []string{storageBlobDataOwner, storageQueueDataContributor, storageTableDataContributor}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, hostStorageRoles(tt.bindings))
		})
	}
}

func TestLowerCamel(t *testing.T) {
	for name, want := range map[string]string{
		"IoT Hub Data Contributor":     "iotHubDataContributor",
		"Storage Blob Data Owner":      "storageBlobDataOwner",
		"Monitoring Metrics Publisher": "monitoringMetricsPublisher",
	} {
		require.Equal(t, want, lowerCamel(name))
	}
}
