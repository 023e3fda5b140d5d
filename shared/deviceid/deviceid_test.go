package deviceid_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/shared/deviceid"
)

func TestValidate(t *testing.T) {
	valid := []string{
		"d",
		"dev-01",
		"AA:BB:CC:DD:EE:FF", // MAC addresses: ':' is allowed
		"site;1",            // IoT Hub registers ';' (azure-iot-sdk-csharp#1100)
		"a+b", "sensor#1", "x?y", "50%", "a_b", "a*b", "a!b", "(a)", "a,b", "a=b", "a@b", "$a", "a'b", "a.b",
		strings.Repeat("x", deviceid.MaxLength),
	}
	for _, id := range valid {
		require.NoError(t, deviceid.Validate(id), "%q", id)
	}
	invalid := map[string]string{
		"": "device id is empty",
		strings.Repeat("x", deviceid.MaxLength+1): "maximum is 128",
		"a b":   "device id contains ' ' at position 1",
		"a/b":   "contains '/'",
		"a\\b":  "contains '\\\\'",
		"a&b":   "contains '&'",
		"é":     "contains 'é'",
		"a\x00": "contains '\\x00'",
		"[a]":   "contains '['",
	}
	for id, want := range invalid {
		require.ErrorContains(t, deviceid.Validate(id), want, "%q", id)
	}
}

// The error lists every allowed special character, ':' and ';' included.
func TestValidateMessageListsAllowedCharacters(t *testing.T) {
	err := deviceid.Validate("a b")
	require.ErrorContains(t, err, "allowed are ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '")
}

// serviceSDKRule is the C# service SDK's check, the reference Validate
// must agree with.
var serviceSDKRule = regexp.MustCompile(`^[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}$`)

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"", "d", "AA:BB", "a b", "a/b", "é", strings.Repeat("z", 129), "site;1#2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := deviceid.Validate(id)
		if want := serviceSDKRule.MatchString(id); want != (err == nil) {
			t.Fatalf("Validate(%q) = %v; the service SDK's rule says valid=%v", id, err, want)
		}
	})
}
