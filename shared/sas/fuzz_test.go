package sas_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// FuzzParse checks two properties: arbitrary input never panics and, when it
// parses, re-serialising the token's fields parses back to the same token;
// and a token minted by New from any resource and key name parses back,
// verifies and authorizes its own resource.
func FuzzParse(f *testing.F) {
	f.Add(goToken("myhub.azure-devices.net", "iothubowner", testKey, testExpiry), "myhub.azure-devices.net", "iothubowner", testExpiry)
	f.Add(goLegacyToken("hub", "", testKey, testExpiry), "hub/devices/d1", "", int64(1))
	f.Add(nodeServiceToken("localhost:8443", "service", testKey, testExpiry), "localhost:8443", "service", testExpiry)
	f.Add(nodeDeviceToken("hub.local", "dev(1)*", testKey, testExpiry), "hub.local/devices/dev(1)*", "", testExpiry)
	f.Add("SharedAccessSignature sr=&sig=&se=", "/", "", int64(0))
	f.Add("SharedAccessSignature sr=a&SR=b", "a b\tc", "k=v&x", int64(-5))
	f.Add("SharedAccessSignature sr=%zz&sig=%&se=99999999999999999999", "\xff\xfe", "\u00a0", int64(1<<62))
	f.Add("", "", "", int64(0))

	f.Fuzz(func(t *testing.T, input, resource, keyName string, expiry int64) {
		if tok, err := sas.Parse(input); err == nil {
			again, err := sas.Parse(format(tok))
			require.NoError(t, err, "re-serialised %q", format(tok))
			require.Equal(t, tok, again)
		} else {
			require.ErrorIs(t, err, sas.ErrMalformed)
		}

		if resource == "" || expiry <= 0 || expiry > 1<<40 {
			return
		}
		token, err := sas.New(resource, keyName, testKeyB64, time.Unix(expiry, 0))
		require.NoError(t, err)
		tok, err := sas.Parse(token)
		require.NoError(t, err, "token %q", token)
		require.Equal(t, resource, tok.Resource)
		require.Equal(t, keyName, tok.KeyName)
		require.Equal(t, expiry, tok.Expiry.Unix())
		require.True(t, tok.Verify(testKey))
		require.False(t, tok.Verify(otherKey))
		if strings.TrimRight(resource, "/") != "" {
			require.True(t, tok.Authorizes(resource))
		}
	})
}

// format writes a token back out with sr and se as they were sent.
func format(t sas.Token) string {
	s := "SharedAccessSignature sr=" + t.RawResource + "&sig=" + url.QueryEscape(t.Signature) + "&se=" + t.RawExpiry
	if t.KeyName != "" {
		s += "&skn=" + url.QueryEscape(t.KeyName)
	}
	return s
}

// FuzzParseConnectionString checks that arbitrary input never panics and
// that whatever parses formats to a string that parses back to the same value.
func FuzzParseConnectionString(f *testing.F) {
	f.Add("HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZg==")
	f.Add("HostName=localhost;DeviceId=d1;ModuleId=m1;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZg==;GatewayHostName=127.0.0.1")
	f.Add(" hostname = h ;deviceid=d;sharedaccesskey=AA==;")
	f.Add("HostName=h;;DeviceId=d")
	f.Add("HostName=h;HostName=h;SharedAccessKey=AA==")
	f.Add("=;=;=")
	f.Add("HostName=a=b=c;DeviceId=\x00;SharedAccessKey=A")
	f.Add("")

	f.Fuzz(func(t *testing.T, input string) {
		cs, err := sas.ParseConnectionString(input)
		if err != nil {
			require.ErrorIs(t, err, sas.ErrMalformed)
			return
		}
		again, err := sas.ParseConnectionString(cs.String())
		require.NoError(t, err, "formatted %q", cs.String())
		require.Equal(t, cs, again)
	})
}
