package iothub

import (
	"context"
	"encoding/base64"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/shared/sas"
)

func TestSASPolicyTokenFormat(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 500, time.UTC)
	p := newSASPolicy("myhub.azure-devices.net", "service", testKey, func() time.Time { return now })

	raw, err := p.currentToken()
	require.NoError(t, err)

	tok, err := sas.Parse(raw)
	require.NoError(t, err)
	require.Equal(t, url.QueryEscape("myhub.azure-devices.net"), tok.RawResource)
	require.Equal(t, "myhub.azure-devices.net", tok.Resource)
	require.Equal(t, "service", tok.KeyName)
	require.Equal(t, now.Add(time.Hour).Truncate(time.Second), tok.Expiry.UTC())
	require.True(t, tok.Verify(mustDecodeKey(t, testKey)), "token must verify with the policy key")
	require.Regexp(t, `^SharedAccessSignature sr=[^&]+&sig=[^&]+&se=\d+&skn=service$`, raw)
}

func TestSASPolicyCachesUntilFiveMinutesBeforeExpiry(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		elapsed time.Duration
		reuse   bool
	}{
		{"immediately", 0, true},
		{"after 54m59s", 54*time.Minute + 59*time.Second, true},
		{"at 55m", 55 * time.Minute, false},
		{"after expiry", 2 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := start
			p := newSASPolicy("h", "service", testKey, func() time.Time { return now })
			first, err := p.currentToken()
			require.NoError(t, err)

			now = start.Add(tt.elapsed)
			second, err := p.currentToken()
			require.NoError(t, err)
			if tt.reuse {
				require.Equal(t, first, second)
				return
			}
			require.NotEqual(t, first, second)
			tok, err := sas.Parse(second)
			require.NoError(t, err)
			require.Equal(t, now.Add(time.Hour), tok.Expiry.UTC(), "a re-minted token is valid an hour from now")
		})
	}
}

func TestSASPolicyConcurrentUse(t *testing.T) {
	p := newSASPolicy("h", "service", testKey, nil)
	var wg sync.WaitGroup
	tokens := make([]string, 16)
	for i := range tokens {
		wg.Go(func() {
			tok, err := p.currentToken()
			require.NoError(t, err)
			tokens[i] = tok
		})
	}
	wg.Wait()
	for _, tok := range tokens {
		require.Equal(t, tokens[0], tok, "one cached token is shared")
	}
}

func TestSASPolicySignsEveryTry(t *testing.T) {
	c, rec := newRecordedClient(t,
		cannedResponse{status: 503, header: map[string]string{"iothub-errorcode": "ServiceUnavailable"}},
		cannedResponse{status: 200, body: `{"deviceId":"d1"}`},
	)
	_, err := c.GetTwin(t.Context(), "d1", nil)
	require.NoError(t, err)

	reqs := rec.recorded()
	require.Len(t, reqs, 2, "503 is retried for reads")
	for _, r := range reqs {
		tok, err := sas.Parse(r.Header.Get("Authorization"))
		require.NoError(t, err)
		require.Equal(t, "myhub.azure-devices.net", tok.Resource)
		require.Equal(t, "iothubowner", tok.KeyName)
	}
}

func TestSASPolicyRefusesPlainHTTP(t *testing.T) {
	rec := &recorder{}
	c, err := NewClientFromConnectionString(
		"HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey="+testKey,
		&ClientOptions{Endpoint: "http://127.0.0.1:1", ClientOptions: policy.ClientOptions{Transport: rec}},
	)
	require.NoError(t, err)

	_, err = c.GetTwin(context.Background(), "d1", nil)
	require.ErrorContains(t, err, "non-TLS")
	require.NotContains(t, err.Error(), testKey)
	require.Empty(t, rec.recorded(), "nothing may be sent over plain http")
	var nre interface{ NonRetriable() }
	require.ErrorAs(t, err, &nre, "retrying cannot help, so the retry policy must not")
}

func mustDecodeKey(t *testing.T, key string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(key)
	require.NoError(t, err)
	return b
}
