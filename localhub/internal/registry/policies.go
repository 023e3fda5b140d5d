package registry

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// defaultPolicies are IoT Hub's default shared access policies plus the
// function app's (infra/modules/iothub.bicep creates the same in Azure):
// serviceAndRegistryRead, and serviceAndRegistryReadWrite for fleet
// reboots, which create jobs (RegistryWrite) and query devices.jobs
// (ServiceConnect). Policies lists them in this order.
var defaultPolicies = []struct {
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

// ensureDefaultPolicies generates keys for default policies the file does
// not have yet; existing keys are never replaced.
func ensureDefaultPolicies(b *bolt.Bucket) error {
	for _, d := range defaultPolicies {
		if b.Get([]byte(d.name)) != nil {
			continue
		}
		v, err := json.Marshal(Policy{
			KeyName:      d.name,
			PrimaryKey:   newKey(),
			SecondaryKey: newKey(),
			Rights:       d.rights,
		})
		if err != nil {
			return err
		}
		if err := b.Put([]byte(d.name), v); err != nil {
			return err
		}
	}
	return nil
}

func readPolicies(b *bolt.Bucket) ([]Policy, error) {
	var ps []Policy
	err := b.ForEach(func(k, v []byte) error {
		var p Policy
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("policy %q: %w", k, err)
		}
		ps = append(ps, p)
		return nil
	})
	slices.SortFunc(ps, func(a, b Policy) int {
		if ra, rb := defaultRank(a.KeyName), defaultRank(b.KeyName); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.KeyName, b.KeyName)
	})
	return ps, err
}

// defaultRank orders default policies first, in their listed order.
func defaultRank(name string) int {
	for i, d := range defaultPolicies {
		if d.name == name {
			return i
		}
	}
	return len(defaultPolicies)
}

// Policies returns every policy in a stable order (defaults first).
func (s *Store) Policies() []Policy { return slices.Clone(s.policies) }

// Policy looks a policy up by exact name.
func (s *Store) Policy(name string) (Policy, bool) {
	for _, p := range s.policies {
		if p.KeyName == name {
			return p, true
		}
	}
	return Policy{}, false
}
