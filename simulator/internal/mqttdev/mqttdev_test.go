package mqttdev

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNewDialerRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"address without port", Options{BrokerAddr: "127.0.0.1"}, "want host:port"},
		{"CA that is not PEM", Options{ExtraRootsPEM: []byte("not a certificate")}, "no PEM certificate"},
	}
	for _, tt := range tests {
		_, err := NewDialer(tt.opts)
		require.ErrorContains(t, err, tt.want, tt.name)
	}
}

func TestTransportParsesConnectionStrings(t *testing.T) {
	d, err := NewDialer(Options{BrokerAddr: "127.0.0.1:8883"})
	require.NoError(t, err)
	require.Equal(t, "tls://127.0.0.1:8883", d.broker.String())

	id, tr, err := d.Transport("HostName=localhost;DeviceId=dev-1;SharedAccessKey=a2V5")
	require.NoError(t, err)
	require.Equal(t, "dev-1", id)
	_, tr2, err := d.Transport("HostName=localhost;DeviceId=dev-2;SharedAccessKey=a2V5")
	require.NoError(t, err)
	c1, c2 := tr.(*transport).tlsc, tr2.(*transport).tlsc
	require.Same(t, c1, c2, "devices of one hub share a TLS configuration")
	require.Equal(t, "localhost", c1.ServerName, "the certificate is checked against HostName, not the dialled address")

	for _, bad := range []string{
		"DeviceId=dev-1;SharedAccessKey=a2V5",     // no HostName
		"HostName=localhost;SharedAccessKey=a2V5", // no DeviceId
		"HostName=localhost;DeviceId=dev-1",       // no key
		"nonsense",
	} {
		_, _, err := d.Transport(bad)
		require.Error(t, err, bad)
	}
}

func TestDispatcherAlwaysAnswers(t *testing.T) {
	var gotName, gotBody string
	d := dispatcher{ctx: context.Background(), handle: func(_ context.Context, name string, payload []byte) (int, []byte) {
		gotName, gotBody = name, string(payload)
		return 404, []byte(`{"error":"no"}`)
	}}
	status, reply, err := d.Dispatch("anything", nil)
	require.NoError(t, err, "an error would make the SDK send no reply at all")
	require.Equal(t, 404, status)
	require.JSONEq(t, `{"error":"no"}`, string(reply))
	require.Equal(t, "anything", gotName)
	require.Empty(t, gotBody)
}
