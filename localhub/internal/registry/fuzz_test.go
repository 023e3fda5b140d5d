package registry

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzPatchReported: any bytes as a device's patch either apply or are
// refused with an InvalidError, never panic, and leave a twin that still
// encodes to valid JSON.
func FuzzPatchReported(f *testing.F) {
	seeds := []string{
		`{}`,
		`{"a":1}`,
		`{"a":{"b":{"c":null}},"d":[1,"x",true,{"e":null}]}`,
		`{"a":null}`,
		`{"n":4503599627370496}`,
		`{"n":-1.5e-300,"s":"\u0000 <&>"}`,
		`{"a.b":1}`,
		`{"$version":5,"$metadata":{}}`,
		`[1,2]`,
		`"str"`,
		`null`,
		``,
		`{"a":1}{"b":2}`,
		`{"a":[null]}`,
		`{"k1":{"k2":{"k3":{"k4":{"k5":{"k6":{"k7":{"k8":{"k9":{"k10":{"k11":1}}}}}}}}}}}`,
		"{\"\xff\xfe\":\"\xc3\x28\"}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	fx := newFixture(f)
	fx.s.db.NoSync = true // fuzzing explores inputs, not durability
	fx.createDevice(f, "fuzz")

	f.Fuzz(func(t *testing.T, patch []byte) {
		_, err := fx.s.PatchReported("fuzz", json.RawMessage(patch))
		var invalid *InvalidError
		if err != nil && !errors.As(err, &invalid) {
			t.Fatalf("PatchReported(%q) = %v, want nil or *InvalidError", patch, err)
		}
		tw, err := fx.s.GetTwin("fuzz")
		require.NoError(t, err)
		b, err := json.Marshal(tw)
		require.NoError(t, err)
		require.True(t, json.Valid(b), "twin JSON: %s", b)
		body, err := fx.s.DeviceTwin("fuzz")
		require.NoError(t, err)
		require.True(t, json.Valid(body), "device twin JSON: %s", body)
		n := fx.rec.last(t)
		require.True(t, json.Valid(n.Body), "notification JSON: %s", n.Body)
	})
}
