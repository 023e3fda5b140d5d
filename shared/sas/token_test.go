package sas_test

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/shared/sas"
)

var (
	testKey    = []byte("0123456789abcdef0123456789abcdef")
	testKeyB64 = base64.StdEncoding.EncodeToString(testKey)
	otherKey   = []byte("fedcba9876543210fedcba9876543210")
)

const testExpiry = int64(1_900_000_000)

func TestParseSDKTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		token       string
		wantRaw     string
		wantRes     string
		wantKeyName string
		authorizes  string
	}{
		{
			name:        "go service token",
			token:       goToken("myhub.azure-devices.net", "iothubowner", testKey, testExpiry),
			wantRaw:     "myhub.azure-devices.net",
			wantRes:     "myhub.azure-devices.net",
			wantKeyName: "iothubowner",
			authorizes:  "myhub.azure-devices.net/devices/d1",
		},
		{
			name:       "go device token for the hub root, host with port",
			token:      goToken("localhost:8883", "", testKey, testExpiry),
			wantRaw:    "localhost%3A8883",
			wantRes:    "localhost:8883",
			authorizes: "localhost:8883/devices/d1",
		},
		{
			name:       "go token over a device path",
			token:      goToken("hub.local/devices/d1", "", testKey, testExpiry),
			wantRaw:    "hub.local%2Fdevices%2Fd1",
			wantRes:    "hub.local/devices/d1",
			authorizes: "hub.local/devices/d1",
		},
		{
			name:       "legacy go token with empty skn",
			token:      goLegacyToken("hub.local", "", testKey, testExpiry),
			wantRaw:    "hub.local",
			wantRes:    "hub.local",
			authorizes: "hub.local/devices/d1",
		},
		{
			name:        "node service token leaves sr raw",
			token:       nodeServiceToken("localhost:8443", "service", testKey, testExpiry),
			wantRaw:     "localhost:8443",
			wantRes:     "localhost:8443",
			wantKeyName: "service",
			authorizes:  "localhost:8443/twins/d1",
		},
		{
			name:       "node device token strictly encodes sr",
			token:      nodeDeviceToken("hub.local", "dev(1)*", testKey, testExpiry),
			wantRaw:    "hub.local%2Fdevices%2Fdev%281%29%2a",
			wantRes:    "hub.local/devices/dev(1)*",
			authorizes: "hub.local/devices/dev(1)*",
		},
		{
			name:        "node service token with a policy name needing escapes",
			token:       nodeServiceToken("hub.local", "my policy(1)", testKey, testExpiry),
			wantRaw:     "hub.local",
			wantRes:     "hub.local",
			wantKeyName: "my policy(1)",
			authorizes:  "hub.local",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, err := sas.Parse(tt.token)
			require.NoError(t, err)
			require.Equal(t, tt.wantRaw, tok.RawResource)
			require.Equal(t, tt.wantRes, tok.Resource)
			require.Equal(t, tt.wantKeyName, tok.KeyName)
			require.Equal(t, strconv.FormatInt(testExpiry, 10), tok.RawExpiry)
			require.Equal(t, time.Unix(testExpiry, 0).UTC(), tok.Expiry)
			require.True(t, tok.Verify(testKey), "Verify with the signing key")
			require.False(t, tok.Verify(otherKey), "Verify with another key")
			require.True(t, tok.Authorizes(tt.authorizes))
		})
	}
}

func TestParseAcceptsHubLeniencies(t *testing.T) {
	t.Parallel()
	sig := hmacB64(testKey, "hub\n"+strconv.FormatInt(testExpiry, 10))
	se := strconv.FormatInt(testExpiry, 10)
	tests := []struct {
		name  string
		token string
	}{
		{"upper-case keys", "SharedAccessSignature SR=hub&SIG=" + encodeURIComponentStrict(sig) + "&SE=" + se},
		{"any field order", "SharedAccessSignature se=" + se + "&skn=&sig=" + encodeURIComponentStrict(sig) + "&sr=hub"},
		{"unknown fields ignored", "SharedAccessSignature sr=hub&x=1&sig=" + encodeURIComponentStrict(sig) + "&se=" + se + "&x=2"},
		{"empty fields skipped", "SharedAccessSignature &sr=hub&&sig=" + encodeURIComponentStrict(sig) + "&se=" + se + "&"},
		{"unescaped '=' padding in sig", "SharedAccessSignature sr=hub&sig=" + strings.ReplaceAll(strings.ReplaceAll(sig, "+", "%2B"), "/", "%2F") + "&se=" + se},
		{"extra whitespace", "  SharedAccessSignature \t sr=hub&sig=" + encodeURIComponentStrict(sig) + "&se=" + se + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, err := sas.Parse(tt.token)
			require.NoError(t, err)
			require.Equal(t, "hub", tok.Resource)
			require.Empty(t, tok.KeyName)
			require.True(t, tok.Verify(testKey))
		})
	}
}

// TestVerifyUsesSRAsSent shows why sr must not be normalised: the same
// audience encoded two ways signs two different strings.
func TestVerifyUsesSRAsSent(t *testing.T) {
	t.Parallel()
	node, err := sas.Parse(nodeServiceToken("localhost:8443", "service", testKey, testExpiry))
	require.NoError(t, err)
	goTok, err := sas.Parse(goToken("localhost:8443", "service", testKey, testExpiry))
	require.NoError(t, err)

	require.Equal(t, node.Resource, goTok.Resource)
	require.NotEqual(t, node.RawResource, goTok.RawResource)
	require.NotEqual(t, node.Signature, goTok.Signature)
	require.True(t, node.Verify(testKey))
	require.True(t, goTok.Verify(testKey))

	tampered := node
	tampered.RawExpiry = strconv.FormatInt(testExpiry+1, 10)
	require.False(t, tampered.Verify(testKey), "signature must cover se")
}

func TestExpired(t *testing.T) {
	t.Parallel()
	tok, err := sas.Parse(goToken("hub", "", testKey, testExpiry))
	require.NoError(t, err)
	expiry := time.Unix(testExpiry, 0)
	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"an hour before", expiry.Add(-time.Hour), false},
		{"at expiry", expiry, false},
		{"within skew", expiry.Add(sas.MaxClockSkew - time.Second), false},
		{"exactly expiry plus skew", expiry.Add(sas.MaxClockSkew), false},
		{"one second past skew", expiry.Add(sas.MaxClockSkew + time.Second), true},
		{"an hour after", expiry.Add(time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tok.Expired(tt.now))
		})
	}
}

func TestAuthorizes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		resource, target string
		want             bool
	}{
		{"hub/devices/d1", "hub/devices/d1", true},
		{"hub/devices/d1", "hub/devices/d10", false},
		{"hub/devices/d1", "hub/devices/d1/modules/m1", true},
		{"hub/devices/d1", "hub/devices/d1/", true},
		{"hub/devices/d1", "hub/devices", false},
		{"hub/devices/d1/", "hub/devices/d1", true},
		{"hub", "hub/devices/x", true},
		{"hub", "hub", true},
		{"hub/", "hub/devices/x", true},
		{"hub//", "hub/twins/x", true},
		{"hub", "hub2/devices/x", false},
		{"hub", "hu", false},
		{"HUB.Local/Devices/D1", "hub.local/devices/d1", true},
		{"hub.local", "HUB.LOCAL/devices/d1", true},
		{"hub/devices/\u212a", "hub/devices/k", false}, // Kelvin sign must not fold to 'k'
		{"/", "hub/devices/x", false},
		{"", "hub/devices/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.resource+"->"+tt.target, func(t *testing.T) {
			t.Parallel()
			got := sas.Token{Resource: tt.resource}.Authorizes(tt.target)
			require.Equal(t, tt.want, got, "Token{Resource: %q}.Authorizes(%q)", tt.resource, tt.target)
		})
	}
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, token, wantErr string
	}{
		{"empty", "", "SharedAccessSignature"},
		{"no scheme", "sr=hub&sig=abc&se=1", "SharedAccessSignature"},
		{"scheme in wrong case", "sharedaccesssignature sr=hub&sig=abc&se=1", "SharedAccessSignature"},
		{"scheme only", "SharedAccessSignature", "SharedAccessSignature"},
		{"three words", "SharedAccessSignature sr=hub&sig=abc&se=1 more", "SharedAccessSignature"},
		{"other scheme", "Bearer sr=hub&sig=abc&se=1", "SharedAccessSignature"},
		{"missing sr", "SharedAccessSignature sig=abc&se=1", "missing or empty sr"},
		{"missing sig", "SharedAccessSignature sr=hub&se=1", "missing or empty sig"},
		{"missing se", "SharedAccessSignature sr=hub&sig=abc", "missing or empty se"},
		{"empty sr", "SharedAccessSignature sr=&sig=abc&se=1", "missing or empty sr"},
		{"empty sig", "SharedAccessSignature sr=hub&sig=&se=1", "missing or empty sig"},
		{"duplicate sr", "SharedAccessSignature sr=hub&sig=abc&se=1&sr=evil", `duplicate field "sr"`},
		{"duplicate in other case", "SharedAccessSignature sr=hub&sig=abc&se=1&Se=2", `duplicate field "se"`},
		{"field without =", "SharedAccessSignature sr=hub&sig=abc&se=1&garbage", "not key=value"},
		{"empty key", "SharedAccessSignature sr=hub&=x&sig=abc&se=1", "not key=value"},
		{"se not a number", "SharedAccessSignature sr=hub&sig=abc&se=soon", "not unix seconds"},
		{"se negative", "SharedAccessSignature sr=hub&sig=abc&se=-1", "not unix seconds"},
		{"se fractional", "SharedAccessSignature sr=hub&sig=abc&se=1.5", "not unix seconds"},
		{"se encoded", "SharedAccessSignature sr=hub&sig=abc&se=%31", "not unix seconds"},
		{"se overflows", "SharedAccessSignature sr=hub&sig=abc&se=99999999999999999999", "se:"},
		{"bad escape in sr", "SharedAccessSignature sr=hub%zz&sig=abc&se=1", "sr:"},
		{"bad escape in sig", "SharedAccessSignature sr=hub&sig=%&se=1", "sig:"},
		{"bad escape in skn", "SharedAccessSignature sr=hub&sig=abc&se=1&skn=%G0", "skn:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := sas.Parse(tt.token)
			require.ErrorIs(t, err, sas.ErrMalformed)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		resource, keyName string
	}{
		{"myhub.azure-devices.net", "iothubowner"},
		{"localhost:8443", ""},
		{"hub.local/devices/dev(1)*", ""},
		{"hub.local", "policy with spaces & symbols=/+"},
	}
	for _, tt := range tests {
		t.Run(tt.resource+"/"+tt.keyName, func(t *testing.T) {
			t.Parallel()
			token, err := sas.New(tt.resource, tt.keyName, testKeyB64, time.Unix(testExpiry, 0))
			require.NoError(t, err)
			require.Equal(t, goToken(tt.resource, tt.keyName, testKey, testExpiry), token,
				"New must mint exactly what the Go SDK mints")

			tok, err := sas.Parse(token)
			require.NoError(t, err)
			require.Equal(t, tt.resource, tok.Resource)
			require.Equal(t, tt.keyName, tok.KeyName)
			require.True(t, tok.Verify(testKey))
			require.True(t, tok.Authorizes(tt.resource))
		})
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	future := time.Unix(testExpiry, 0)
	tests := []struct {
		name, resource, key string
		expiry              time.Time
		wantErr             string
	}{
		{"empty resource", "", testKeyB64, future, "empty resource"},
		{"empty key", "hub", "", future, "empty shared access key"},
		{"key not base64", "hub", "not*base64", future, "not base64"},
		{"expiry before 1970", "hub", testKeyB64, time.Time{}, "not after 1970"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := sas.New(tt.resource, "", tt.key, tt.expiry)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestSign(t *testing.T) {
	t.Parallel()
	require.Equal(t, hmacB64(testKey, "hub%2Fdevices%2Fd1\n1900000000"), sas.Sign("hub%2Fdevices%2Fd1", "1900000000", testKey))
}

func BenchmarkParseVerify(b *testing.B) {
	token := nodeDeviceToken("myhub.azure-devices.net", "device-0001", testKey, testExpiry)
	b.ReportAllocs()
	for b.Loop() {
		tok, err := sas.Parse(token)
		if err != nil || !tok.Verify(testKey) {
			b.Fatalf("Parse/Verify failed: %v", err)
		}
	}
}
