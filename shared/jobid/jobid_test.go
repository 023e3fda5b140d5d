package jobid

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, id := range []string{"a", "job01", "JOBSAMPLE0f8fad5b-d9cb-469f-a165-70867728950e", strings.Repeat("x", MaxLength)} {
		if err := Validate(id); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", strings.Repeat("x", MaxLength+1), "a_b", "a b", "a/b", "a.b", "é", "a\x00"} {
		if err := Validate(id); err == nil {
			t.Errorf("Validate(%q) = nil, want an error", id)
		}
	}
}
