package funchost

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/funchost/funchosttest"
)

// TestResolveConnection: the connection setting is looked up as the
// extension's EventHubClientFactory looks it up (AzureWebJobs<name>, then
// <name>; a value is a connection string, a section with
// fullyQualifiedNamespace an identity-based connection).
func TestResolveConnection(t *testing.T) {
	const key = ";SharedAccessKeyName=service;SharedAccessKey=a2V5"
	tests := []struct {
		name     string
		settings settings
		want     ehConnection
		wantErr  string
	}{
		{name: "IoT Hub's built-in endpoint", settings: settings{"C": "Endpoint=sb://ihsuprodxx.servicebus.windows.net/" + key + ";EntityPath=myhub"},
			want: ehConnection{namespace: "ihsuprodxx.servicebus.windows.net", entityPath: "myhub"}},
		{name: "the local hub's emulator form", settings: settings{"C": "Endpoint=sb://localhost:5672" + key + ";EntityPath=localhost;UseDevelopmentEmulator=true"},
			want: ehConnection{namespace: "localhost", entityPath: "localhost", emulator: true}},
		{name: "TLS on another port", settings: settings{"C": "Endpoint=sb://localhost:15671/" + key + ";EntityPath=localhost"},
			want: ehConnection{namespace: "localhost", entityPath: "localhost", serverName: "localhost"}},
		{name: "AzureWebJobs prefix first", settings: settings{"AzureWebJobsC": "Endpoint=sb://first.example/" + key, "C": "Endpoint=sb://second.example/" + key},
			want: ehConnection{namespace: "first.example"}},
		{name: "identity", settings: settings{"C__fullyQualifiedNamespace": "ns.servicebus.windows.net", "C__credential": "managedidentity", "C__clientId": "id-1"},
			want: ehConnection{namespace: "ns.servicebus.windows.net", identity: map[string]string{"fullyqualifiednamespace": "ns.servicebus.windows.net", "credential": "managedidentity", "clientid": "id-1"}}},
		{name: "identity, colon form", settings: settings{"C:fullyQualifiedNamespace": "ns.servicebus.windows.net"},
			want: ehConnection{namespace: "ns.servicebus.windows.net", identity: map[string]string{"fullyqualifiednamespace": "ns.servicebus.windows.net"}}},
		{name: "a connection string wins over a section", settings: settings{"C": "Endpoint=sb://cs.example/" + key, "C__fullyQualifiedNamespace": "ns.example"},
			want: ehConnection{namespace: "cs.example"}},
		{name: "section without namespace", settings: settings{"C__clientId": "x"}, wantErr: "should have a 'fullyQualifiedNamespace' property"},
		{name: "not set", settings: settings{"D": "x"}, wantErr: "EventHub account connection string with name 'C' does not exist in the settings"},
		{name: "not a connection string", settings: settings{"C": "sb://ns/"}, wantErr: `connection "C"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveConnection("C", tt.settings)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			got.connectionString = ""
			tt.want.setting = "C"
			require.Equal(t, tt.want, got)
		})
	}

	// A connection string put where the setting's name belongs is not
	// repeated in the error.
	_, err := resolveConnection("Endpoint=sb://x/"+key, settings{})
	require.ErrorContains(t, err, "<< REDACTED >>")
	require.NotContains(t, err.Error(), "a2V5")
}

// TestEventHubTriggerResolution: EntityPath wins over eventHubName, and
// the connection's name may itself be a %SETTING% expression.
func TestEventHubTriggerResolution(t *testing.T) {
	s := settings{
		"WHICH": "EH", "EH": "Endpoint=sb://localhost:5672;SharedAccessKeyName=service;SharedAccessKey=a2V5;EntityPath=fromconn;UseDevelopmentEmulator=true",
		"GROUP": "localdev",
	}
	tr, err := newEventHubTrigger(binding{Name: "events", EventHubName: "ignored", Connection: "%WHICH%", ConsumerGroup: "%GROUP%", Cardinality: "many", DataType: "string"}, s)
	require.NoError(t, err)
	require.Equal(t, "fromconn", tr.eventHubName)
	require.Equal(t, "localdev", tr.consumerGroup)
	require.Equal(t, "localhost", tr.namespace())

	_, err = newEventHubTrigger(binding{Name: "events", Connection: "I", ConsumerGroup: "x"}, settings{"I__fullyQualifiedNamespace": "ns.example"})
	require.ErrorContains(t, err, "no event hub name")
}

// TestNoLocalhubImport: the local host reaches the hub only over the wire,
// as it would reach Azure.
func TestNoLocalhubImport(t *testing.T) {
	out, err := exec.Command(funchosttest.GoTool(), "list", "-deps", "github.com/iothub-reboot/devmgmt/funchost").Output()
	require.NoError(t, err)
	for _, dep := range strings.Fields(string(out)) {
		require.False(t, strings.HasPrefix(dep, "github.com/iothub-reboot/devmgmt/localhub"), "funchost imports %s", dep)
	}
	require.Contains(t, string(out), "github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2")
}
