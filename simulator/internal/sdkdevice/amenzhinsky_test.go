// Package sdkdevice_test runs amenzhinsky/iothub's device client, as an
// application would use it (iotdevice.Client and its method mux), against
// the local hub.
package sdkdevice_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/amenzhinsky/iothub/iotdevice"
	"github.com/amenzhinsky/iothub/iotdevice/transport/mqtt"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/simulator/internal/hubrest"
	"github.com/iothub-reboot/devmgmt/simulator/internal/hubtest"
)

// localhubBin is the local hub, built once for this package's tests.
var localhubBin string

func TestMain(m *testing.M) { os.Exit(hubtest.Main(m, &localhubBin)) }

// calls records what the device's handler was given.
type calls struct {
	mu   sync.Mutex
	seen []map[string]any
}

func (c *calls) last(t *testing.T) map[string]any {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.NotEmpty(t, c.seen, "the handler was not called")
	return c.seen[len(c.seen)-1]
}

// connect runs an amenzhinsky device client for a new device on the hub,
// with a "reboot" method registered through the client's mux.
func connect(t *testing.T, hub *hubtest.Hub, id string) *calls {
	t.Helper()
	ctx := t.Context()
	cs, err := hub.Service().EnsureDevice(ctx, id)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(hub.CAPEM(t)))
	creds, err := iotdevice.ParseConnectionString(cs)
	require.NoError(t, err)
	tr := mqtt.New(mqtt.WithClientOptionsConfig(func(o *paho.ClientOptions) {
		o.Servers = []*url.URL{{Scheme: "tls", Host: hub.MQTTAddr}}
		o.SetTLSConfig(&tls.Config{RootCAs: roots, ServerName: creds.HostName, MinVersion: tls.VersionTLS12})
	}))
	c, err := iotdevice.NewFromConnectionString(tr, cs)
	require.NoError(t, err)
	require.NoError(t, c.Connect(ctx))
	t.Cleanup(func() { _ = c.Close() })

	rec := &calls{}
	require.NoError(t, c.RegisterMethod(ctx, "reboot", func(p map[string]any) (int, map[string]any, error) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, p)
		rec.mu.Unlock()
		return 200, map[string]any{"result": "Reboot started"}, nil
	}))
	return rec
}

// invoke posts body to the device's methods endpoint.
func invoke(t *testing.T, hub *hubtest.Hub, id, body string) hubtest.MethodResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b, err := hub.Service().Do(ctx, http.MethodPost, "/twins/"+url.PathEscape(id)+"/methods", []byte(body))
	var re *hubrest.ResponseError
	if errors.As(err, &re) {
		t.Fatalf("invoke: %v", re)
	}
	require.NoError(t, err)
	var r hubtest.MethodResult
	require.NoError(t, json.Unmarshal(b, &r))
	return r
}

// TestAmenzhinskyDeviceMethods: the client's mux decodes every body into a
// map. A payload of null reaches it as the JSON null (a nil map) and {} as
// an empty map, so both work. A request with no payload member reaches the
// device as an empty body, as on Azure IoT Hub; the mux cannot decode that
// and answers 500 itself (which is why the simulator uses its own
// dispatcher).
func TestAmenzhinskyDeviceMethods(t *testing.T) {
	t.Parallel()
	hub := hubtest.Start(t, localhubBin)
	rec := connect(t, hub, "amz-1")

	r := invoke(t, hub, "amz-1", `{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":10}`)
	require.Equal(t, 200, r.Status)
	require.JSONEq(t, `{"result":"Reboot started"}`, string(r.Payload))
	require.Nil(t, rec.last(t), "null decodes to a nil map")

	r = invoke(t, hub, "amz-1", `{"methodName":"reboot","payload":{},"responseTimeoutInSeconds":10}`)
	require.Equal(t, 200, r.Status)
	require.Equal(t, map[string]any{}, rec.last(t))

	r = invoke(t, hub, "amz-1", `{"methodName":"reboot","payload":{"delaySeconds":5},"responseTimeoutInSeconds":10}`)
	require.Equal(t, 200, r.Status)
	require.Equal(t, map[string]any{"delaySeconds": 5.0}, rec.last(t))

	r = invoke(t, hub, "amz-1", `{"methodName":"reboot","responseTimeoutInSeconds":10}`)
	require.Equal(t, 500, r.Status, "the mux refuses the empty body of a request without payload")
	require.JSONEq(t, `{"error":"unexpected end of JSON input"}`, string(r.Payload))
}
