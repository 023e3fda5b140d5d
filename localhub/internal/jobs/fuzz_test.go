package jobs

import (
	"errors"
	"strings"
	"testing"

	"github.com/iothub-reboot/devmgmt/localhub/internal/query"
)

// FuzzParseCondition: a job's queryCondition is refused with an
// *InvalidError (a 400 on the wire) or becomes a twin query on devices.
// Seeds: testdata/fuzz/FuzzParseCondition.
func FuzzParseCondition(f *testing.F) {
	f.Add("deviceId = 'a'")
	f.Fuzz(func(t *testing.T, cond string) {
		q, err := parseCondition(cond)
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("parseCondition(%q): %T %v, want *InvalidError", cond, err, err)
			}
			return
		}
		if q.From() != query.CollectionDevices || q.ItemType() != query.ItemTypeTwin {
			t.Fatalf("parseCondition(%q) selects %s items from %s", cond, q.ItemType(), q.From())
		}
		if strings.TrimSpace(cond) == "" {
			t.Fatalf("parseCondition accepted a blank condition")
		}
	})
}
