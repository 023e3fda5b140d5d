package registry

import (
	"fmt"
	"strings"
)

// Rights are shared access policy permissions.
type Rights uint8

const (
	RegistryRead Rights = 1 << iota
	RegistryWrite
	ServiceConnect
	DeviceConnect
)

// rightNames is in the order IoT Hub's ARM enum spells combinations.
var rightNames = [...]struct {
	right Rights
	name  string
}{
	{RegistryRead, "RegistryRead"},
	{RegistryWrite, "RegistryWrite"},
	{ServiceConnect, "ServiceConnect"},
	{DeviceConnect, "DeviceConnect"},
}

// String spells rights as the IoT Hub ARM enum does: "RegistryRead, ServiceConnect".
func (r Rights) String() string {
	var names []string
	for _, rn := range rightNames {
		if r.Has(rn.right) {
			names = append(names, rn.name)
		}
	}
	return strings.Join(names, ", ")
}

// Has reports whether r includes every right in want.
func (r Rights) Has(want Rights) bool { return r&want == want }

// MarshalText encodes rights as String does, so a Policy in JSON reads like
// the ARM resource ("rights": "RegistryRead, RegistryWrite").
func (r Rights) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses the form MarshalText writes.
func (r *Rights) UnmarshalText(text []byte) error {
	var parsed Rights
	for field := range strings.SplitSeq(string(text), ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		found := false
		for _, rn := range rightNames {
			if strings.EqualFold(field, rn.name) {
				parsed |= rn.right
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("unknown access right %q", field)
		}
	}
	*r = parsed
	return nil
}

// Policy is a shared access policy. Keys are base64 text.
type Policy struct {
	KeyName      string `json:"keyName"`
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
	Rights       Rights `json:"rights"`
}
