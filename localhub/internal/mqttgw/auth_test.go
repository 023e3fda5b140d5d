package mqttgw

import (
	"crypto/tls"
	"io"
	"net/url"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

func TestConnectAuthentication(t *testing.T) {
	h := newTestHub(t)
	d1 := h.createDevice(t, "d1")
	d2 := h.createDevice(t, "d2")
	off, err := h.reg.CreateDevice(registry.Device{DeviceID: "off", Status: "disabled"})
	require.NoError(t, err)
	devicePolicy, ok := h.reg.Policy("device")
	require.True(t, ok)
	servicePolicy, ok := h.reg.Policy("service")
	require.True(t, ok)

	k1 := d1.Authentication.SymmetricKey
	hour := time.Now().Add(time.Hour)
	token := func(resource, keyName, key string, expiry time.Time) string {
		tok, err := sas.New(resource, keyName, key, expiry)
		require.NoError(t, err)
		return tok
	}
	goUser := func(id string) string { return testHost + "/" + id + "/" + goAPIVersion }
	nodeUser := func(id string) string {
		return testHost + "/" + id + "/?api-version=2021-04-12&DeviceClientType=" +
			url.QueryEscape("azure-iot-device/1.18.3 (node v20.11.1; Linux; x64)")
	}

	tests := []struct {
		name     string
		clientID string
		user     string
		password string
		version  uint
		wantCode byte // CONNACK return code
	}{
		{"go sdk: sr=host, primary key", "d1", goUser("d1"), token(testHost, "", k1.PrimaryKey, hour), 4, 0},
		{"go sdk with model id", "d1", goUser("d1") + "&model-id=" + url.QueryEscape("dtmi:com:example:Thermostat;1"), token(testHost, "", k1.PrimaryKey, hour), 4, 0},
		{"node sdk: sr=host/devices/id", "d1", nodeUser("d1"), token(testHost+"/devices/d1", "", k1.PrimaryKey, hour), 4, 0},
		{"secondary key", "d1", goUser("d1"), token(testHost, "", k1.SecondaryKey, hour), 4, 0},
		{"host case-insensitive", "d1", "LocalHost/d1/" + goAPIVersion, token("LOCALHOST", "", k1.PrimaryKey, hour), 4, 0},
		{"policy with DeviceConnect", "d1", goUser("d1"), token(testHost, "device", devicePolicy.PrimaryKey, hour), 4, 0},
		{"expiry within clock skew", "d1", goUser("d1"), token(testHost, "", k1.PrimaryKey, time.Now().Add(-time.Minute)), 4, 0},

		{"wrong key", "d1", goUser("d1"), token(testHost, "", d2.Authentication.SymmetricKey.PrimaryKey, hour), 4, 5},
		{"expired", "d1", goUser("d1"), token(testHost, "", k1.PrimaryKey, time.Now().Add(-10*time.Minute)), 4, 5},
		{"token for another device", "d1", goUser("d1"), token(testHost+"/devices/d2", "", k1.PrimaryKey, hour), 4, 5},
		{"username names another device", "d1", goUser("d2"), token(testHost, "", k1.PrimaryKey, hour), 4, 5},
		{"username names another hub", "d1", "otherhub.azure-devices.net/d1/" + goAPIVersion, token(testHost, "", k1.PrimaryKey, hour), 4, 5},
		{"username without api-version", "d1", testHost + "/d1/", token(testHost, "", k1.PrimaryKey, hour), 4, 5},
		{"unknown device", "ghost", goUser("ghost"), token(testHost, "", k1.PrimaryKey, hour), 4, 5},
		{"disabled device", "off", goUser("off"), token(testHost, "", off.Authentication.SymmetricKey.PrimaryKey, hour), 4, 5},
		{"policy without DeviceConnect", "d1", goUser("d1"), token(testHost, "service", servicePolicy.PrimaryKey, hour), 4, 5},
		{"unknown policy", "d1", goUser("d1"), token(testHost, "nope", k1.PrimaryKey, hour), 4, 5},
		{"password is not a token", "d1", goUser("d1"), "hunter2", 4, 5},
		{"module client id", "d1/m1", testHost + "/d1/m1/" + goAPIVersion, token(testHost, "", k1.PrimaryKey, hour), 4, 5},
		{"MQTT 3.1 refused", "d1", goUser("d1"), token(testHost, "", k1.PrimaryKey, hour), 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, tok := h.dial(t, tt.clientID, "", withCredentials(tt.user, tt.password), func(o *paho.ClientOptions) {
				o.SetProtocolVersion(tt.version)
			})
			require.Equal(t, tt.wantCode, tok.ReturnCode(), "CONNACK return code (error %v)", tok.Error())
			if tt.wantCode == 0 {
				d.Disconnect(0)
			} else {
				require.Error(t, tok.Error())
			}
		})
	}
}

func TestParseUsername(t *testing.T) {
	tests := []struct {
		user, deviceID string
		wantModel      string
		wantErr        bool
	}{
		{user: "h.azure-devices.net/d1/api-version=2020-09-30", deviceID: "d1"},
		{user: "h.azure-devices.net/d1/api-version=2020-09-30&model-id=dtmi%3Acom%3Aex%3BM%3B1", deviceID: "d1", wantModel: "dtmi:com:ex;M;1"},
		{user: "h.azure-devices.net/d1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.0", deviceID: "d1"},
		{user: "H.Azure-Devices.NET/d1/?api-version=2021-04-12", deviceID: "d1"},
		{user: "h.azure-devices.net/d1?x/api-version=1", deviceID: "d1?x"},
		{user: "h.azure-devices.net/d1/", deviceID: "d1", wantErr: true},
		{user: "h.azure-devices.net/d1", deviceID: "d1", wantErr: true},
		{user: "h.azure-devices.net/d12/api-version=1", deviceID: "d1", wantErr: true},
		{user: "other.net/d1/api-version=1", deviceID: "d1", wantErr: true},
		{user: "", deviceID: "d1", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseUsername(tt.user, "h.azure-devices.net", tt.deviceID)
		if tt.wantErr {
			require.Error(t, err, "parseUsername(%q)", tt.user)
			continue
		}
		require.NoError(t, err, "parseUsername(%q)", tt.user)
		require.Equal(t, tt.wantModel, got.modelID, "parseUsername(%q)", tt.user)
	}
}

func TestConnectMQTT5Refused(t *testing.T) {
	h := newTestHub(t)
	h.createDevice(t, "d1")
	conn, err := tls.Dial("tcp", h.addr, h.tls)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(waitLimit)))

	// CONNECT, protocol level 5, clean start, keep-alive 60, no
	// properties, client id "d1".
	_, err = conn.Write([]byte{0x10, 0x0f, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0, 0, 2, 'd', '1'})
	require.NoError(t, err)
	connack := make([]byte, 4)
	_, err = io.ReadFull(conn, connack)
	require.NoError(t, err)
	require.Equal(t, byte(0x20), connack[0], "CONNACK")
	require.Equal(t, byte(0x84), connack[3], "reason: unsupported protocol version")
}
