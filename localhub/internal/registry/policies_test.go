package registry

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDefaultPoliciesGeneratedAndPersisted(t *testing.T) {
	f := newFixture(t)
	first := f.s.Policies()

	want := []struct {
		name   string
		rights Rights
	}{
		{"iothubowner", RegistryRead | RegistryWrite | ServiceConnect | DeviceConnect},
		{"service", ServiceConnect},
		{"device", DeviceConnect},
		{"registryRead", RegistryRead},
		{"registryReadWrite", RegistryRead | RegistryWrite},
		{"serviceAndRegistryRead", ServiceConnect | RegistryRead},
		{"serviceAndRegistryReadWrite", ServiceConnect | RegistryRead | RegistryWrite},
	}
	require.Len(t, first, len(want))
	seen := map[string]bool{}
	for i, w := range want {
		p := first[i]
		require.Equal(t, w.name, p.KeyName)
		require.Equal(t, w.rights, p.Rights, p.KeyName)
		for _, k := range []string{p.PrimaryKey, p.SecondaryKey} {
			raw, err := base64.StdEncoding.DecodeString(k)
			require.NoError(t, err)
			require.Len(t, raw, 32)
			require.False(t, seen[k], "key reused")
			seen[k] = true
		}
	}

	f.reopen(t)
	require.Equal(t, first, f.s.Policies(), "keys must survive a restart")

	p, ok := f.s.Policy("service")
	require.True(t, ok)
	require.Equal(t, first[1], p)
	_, ok = f.s.Policy("Service")
	require.False(t, ok, "policy names are exact")
}

func TestRightsString(t *testing.T) {
	tests := []struct {
		rights Rights
		want   string
	}{
		{0, ""},
		{RegistryRead, "RegistryRead"},
		{ServiceConnect | RegistryRead, "RegistryRead, ServiceConnect"},
		{DeviceConnect | RegistryWrite, "RegistryWrite, DeviceConnect"},
		{RegistryRead | RegistryWrite | ServiceConnect | DeviceConnect, "RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.rights.String())
		text, err := tt.rights.MarshalText()
		require.NoError(t, err)
		var back Rights
		require.NoError(t, back.UnmarshalText(text))
		require.Equal(t, tt.rights, back)
	}
	var r Rights
	require.Error(t, r.UnmarshalText([]byte("RegistryRead, Everything")))
}

func TestRightsHas(t *testing.T) {
	r := ServiceConnect | RegistryRead
	require.True(t, r.Has(ServiceConnect))
	require.True(t, r.Has(ServiceConnect|RegistryRead))
	require.False(t, r.Has(RegistryWrite))
	require.False(t, r.Has(ServiceConnect|RegistryWrite))
}

func TestPolicyJSONSpellsRights(t *testing.T) {
	b, err := json.Marshal(Policy{KeyName: "registryReadWrite", Rights: RegistryRead | RegistryWrite})
	require.NoError(t, err)
	require.JSONEq(t, `{"keyName":"registryReadWrite","primaryKey":"","secondaryKey":"","rights":"RegistryRead, RegistryWrite"}`, string(b))
}
