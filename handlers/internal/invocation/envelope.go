package invocation

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrMalformed is wrapped by every decoding error: the host sent something
// that is not an invocation of the expected shape.
var ErrMalformed = errors.New("invocation: malformed envelope")

// envelope is the host's request body. encoding/json matches keys
// case-insensitively, as the host's Newtonsoft reader does.
type envelope[M any] struct {
	Data     map[string]json.RawMessage
	Metadata M
}

// binding returns Data[name]. The key is the binding's name in
// function.json; a case-insensitive match or a sole entry is accepted too,
// so a renamed binding does not silently drop every invocation.
func binding(data map[string]json.RawMessage, name string) (json.RawMessage, error) {
	if v, ok := data[name]; ok {
		return v, nil
	}
	for k, v := range data {
		if strings.EqualFold(k, name) {
			return v, nil
		}
	}
	if len(data) == 1 {
		for _, v := range data {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w: Data has no binding %q", ErrMalformed, name)
}

// Response is what the handler returns for an invocation. Outputs maps
// output binding names to values; each Logs entry is logged by the host at
// Information level against the invocation.
type Response struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// NewResponse returns a Response with empty (not null) Outputs and Logs;
// the host warns about a missing Outputs.
func NewResponse() Response {
	return Response{Outputs: map[string]any{}, Logs: []string{}}
}
