package hubtest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// banner is the local hub's output as cmd/localhub/serve.go prints it.
const banner = `Local IoT Hub "localhost" is running.
  Service REST API (HTTPS): https://127.0.0.1:42009
  Devices (MQTT over TLS):  127.0.0.1:33895
  Data directory:           /tmp/lh/data

Service connection strings (point clients at https://127.0.0.1:42009; HostName carries no port, as in Azure):
  iothubowner              HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=V8/+YR5s2PRZLLifCNnP1cCPt23f3BUE2pMaqFIBzTw=
  service                  HostName=localhost;SharedAccessKeyName=service;SharedAccessKey=qokPa2Q410CJxF7tUYYQWXp+kalwQpaksBR9ASdMJKo=

Trust the local CA: /tmp/lh/data/tls/ca.pem
  Go:      tls.Config{RootCAs: pool with that file}, or SSL_CERT_FILE=/tmp/lh/data/tls/ca.pem for the system pool
  Node.js: NODE_EXTRA_CA_CERTS=/tmp/lh/data/tls/ca.pem (the Node service SDK cannot take a port: serve HTTPS on :443)

Create a device: localhub device create my-device --data-dir /tmp/lh/data
this line is never read
`

func TestParseBanner(t *testing.T) {
	got, err := ParseBanner(strings.NewReader(banner))
	require.NoError(t, err)
	require.Equal(t, Banner{
		HTTPSURL: "https://127.0.0.1:42009",
		MQTTAddr: "127.0.0.1:33895",
		CAFile:   "/tmp/lh/data/tls/ca.pem",
		Policies: map[string]string{
			"iothubowner": "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=V8/+YR5s2PRZLLifCNnP1cCPt23f3BUE2pMaqFIBzTw=",
			"service":     "HostName=localhost;SharedAccessKeyName=service;SharedAccessKey=qokPa2Q410CJxF7tUYYQWXp+kalwQpaksBR9ASdMJKo=",
		},
	}, got)
}

func TestParseBannerRefusesPartialOutput(t *testing.T) {
	for _, cut := range []string{"", "Local IoT Hub", banner[:strings.Index(banner, "Trust")]} {
		_, err := ParseBanner(strings.NewReader(cut))
		require.Error(t, err, "ParseBanner(%q)", cut)
	}
}

// FuzzParseBanner: any output is either refused or yields every field.
func FuzzParseBanner(f *testing.F) {
	f.Add(banner)
	f.Add("Create a device:")
	f.Add("  Service REST API (HTTPS): \n  x SharedAccessKeyName=\nCreate a device:")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBanner(strings.NewReader(s))
		if err != nil {
			return
		}
		if b.HTTPSURL == "" || b.MQTTAddr == "" || b.CAFile == "" || len(b.Policies) == 0 {
			t.Fatalf("ParseBanner(%q) = %+v with no error", s, b)
		}
	})
}
