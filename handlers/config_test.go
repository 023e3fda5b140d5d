package handlers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadConfig(t *testing.T) {
	const cs = "HostName=localhost;SharedAccessKeyName=service;SharedAccessKey=c2VjcmV0"
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr []string
	}{
		{
			name: "connection string",
			env:  map[string]string{envConnectionString: cs, envPort: "7072"},
			want: Config{ConnectionString: cs, Port: "7072", StatusDeadline: DefaultStatusDeadline},
		},
		{
			name: "host name with a user-assigned identity in Azure",
			env: map[string]string{envHostname: "hub.azure-devices.net", envClientID: "1234", envPort: "7072",
				envIdentityEndpoint: "http://localhost:8081/msi/token", envStatusDeadline: "1h30m"},
			want: Config{Hostname: "hub.azure-devices.net", ClientID: "1234", Port: "7072",
				StatusDeadline: 90 * time.Minute, ManagedIdentityAvailable: true},
		},
		{
			name: "local hub overrides and the legacy port variable",
			env: map[string]string{envConnectionString: cs, envLegacyPort: "9000",
				envEndpoint: "https://127.0.0.1:8443", envCAFile: "/tmp/ca.pem"},
			want: Config{ConnectionString: cs, Port: "9000", Endpoint: "https://127.0.0.1:8443", CAFile: "/tmp/ca.pem", StatusDeadline: DefaultStatusDeadline},
		},
		{
			name:    "nothing configured",
			env:     map[string]string{},
			wantErr: []string{"IOTHUB_CONNECTION_STRING", "IOTHUB_HOSTNAME", "FUNCTIONS_CUSTOMHANDLER_PORT is not set"},
		},
		{
			name:    "bad port and deadline",
			env:     map[string]string{envHostname: "h", envPort: "http", envStatusDeadline: "10"},
			wantErr: []string{"FUNCTIONS_CUSTOMHANDLER_PORT is not a port number", "REBOOT_STATUS_DEADLINE must be a positive Go duration"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadConfig(func(k string) string { return tt.env[k] })
			if tt.wantErr != nil {
				require.Error(t, err)
				for _, s := range tt.wantErr {
					require.Contains(t, err.Error(), s)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestLoadConfigNeverEchoesSecrets(t *testing.T) {
	_, err := LoadConfig(func(k string) string {
		if k == envStatusDeadline {
			return "SharedAccessKey=c2VjcmV0"
		}
		return ""
	})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "c2VjcmV0")
}

func TestNewHubClientRejectsBadSettings(t *testing.T) {
	_, err := NewHubClient(Config{ConnectionString: "HostName=h;SharedAccessKeyName=p;SharedAccessKey=not base64!"}, nil)
	require.ErrorContains(t, err, envConnectionString)
	require.NotContains(t, err.Error(), "not base64!")

	_, err = NewHubClient(Config{Hostname: "h.azure-devices.net", CAFile: "/does/not/exist.pem"}, nil)
	require.ErrorContains(t, err, envCAFile)

	client, err := NewHubClient(Config{Hostname: "h.azure-devices.net"}, nil)
	require.NoError(t, err)
	require.NotNil(t, client)
}
