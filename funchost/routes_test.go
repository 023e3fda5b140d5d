package funchost

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseRoute(t *testing.T) {
	tests := []struct {
		tmpl    string
		wantErr string
	}{
		{"devices/{deviceId}/reboot", ""},
		{"/reboots/", ""},
		{"", ""},
		{"files/{*path}", ""},
		{"files/{**path}", ""},
		{"items/{id:int}/{name?}", ""},
		{"items/{id:int:min(1)}", ""},
		{"items/{page=1}", ""},
		{"openapi.json", ""},
		{"file.{ext}", "complex segments"},
		{"a/{x}/{x}", "appears twice"},
		{"a/{X}/{x}", "appears twice"},
		{"a/{*rest}/b", "must be the last"},
		{"a/{opt?}/b", "after the required"},
		{"a//b", "empty segment"},
		{"a/{}", "a parameter must be a whole segment"},
		{"a/{x?=1}", "both optional and have a default"},
		{"a/{:int}", "not a parameter name"},
		{"a?b", "may not contain"},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			_, err := parseRoute(tt.tmpl)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestRouteMatch(t *testing.T) {
	tests := []struct {
		tmpl, path string
		want       map[string]string // nil: no match
	}{
		{"devices/{deviceId}/reboot", "devices/dev-1/reboot", map[string]string{"deviceId": "dev-1"}},
		{"devices/{deviceId}/reboot", "DEVICES/dev-1/Reboot", map[string]string{"deviceId": "dev-1"}},
		{"devices/{deviceId}/reboot", "devices/a%2Fb/reboot", map[string]string{"deviceId": "a/b"}},
		{"devices/{deviceId}/reboot", "devices/dev-1", nil},
		{"devices/{deviceId}/reboot", "devices/dev-1/reboot/x", nil},
		{"devices/{deviceId}/reboot", "devices//reboot", nil},
		{"reboots", "reboots/", map[string]string{}},
		{"files/{*path}", "files/a/b/c", map[string]string{"path": "a/b/c"}},
		{"files/{*path}", "files", map[string]string{}},
		{"items/{id:int}/{name?}", "items/42", map[string]string{"id": "42"}},
		{"items/{id:int}/{name?}", "items/42/x", map[string]string{"id": "42", "name": "x"}},
		{"items/{id:int}/{name?}", "items/x", nil},
		{"items/{page=1}", "items", map[string]string{"page": "1"}},
		{"items/{g:guid}", "items/3b1f5b8e-8f2a-4d55-9a53-3a4f7f1c2d10", map[string]string{"g": "3b1f5b8e-8f2a-4d55-9a53-3a4f7f1c2d10"}},
		{"items/{g:guid}", "items/3b1f5b8e", nil},
		{"items/{a:alpha}", "items/abc", map[string]string{"a": "abc"}},
		{"items/{a:alpha}", "items/ab1", nil},
		{"items/{b:bool}", "items/TRUE", map[string]string{"b": "TRUE"}},
		{"items/{r:regex(^a$)}", "items/zzz", map[string]string{"r": "zzz"}}, // unchecked
	}
	for _, tt := range tests {
		t.Run(tt.tmpl+" "+tt.path, func(t *testing.T) {
			r, err := parseRoute(tt.tmpl)
			require.NoError(t, err)
			table := &routeTable{prefix: "api", fns: []*function{{name: "F", route: r}}}
			fn, params, ok := table.match("GET", "/api/"+tt.path)
			if tt.want == nil {
				require.False(t, ok, "params %v", params)
				return
			}
			require.True(t, ok)
			require.Equal(t, "F", fn.name)
			require.Equal(t, tt.want, params)
		})
	}
}

func TestRouteTablePrecedenceAndPrefix(t *testing.T) {
	mk := func(name, route string, methods ...string) *function {
		r, err := parseRoute(route)
		require.NoError(t, err)
		return &function{name: name, route: r, methods: methods, trigger: binding{Type: "httpTrigger"}}
	}
	fns := []*function{
		mk("CatchAll", "{*all}"),
		mk("Param", "reboots/{deviceId}"),
		mk("Literal", "reboots/summary"),
		mk("Post", "reboots/{deviceId}/x", "POST"),
		{name: "Off", route: routeTemplate{text: "off"}, disabled: true, trigger: binding{Type: "httpTrigger"}},
	}
	tests := []struct {
		prefix, method, path, want string
	}{
		{"api", "GET", "/api/reboots/summary", "Literal"},
		{"api", "GET", "/api/reboots/dev-1", "Param"},
		{"api", "GET", "/api/anything/else", "CatchAll"},
		{"api", "POST", "/api/reboots/dev-1/x", "Post"},
		{"api", "GET", "/api/reboots/dev-1/x", "CatchAll"}, // the method rules Post out
		{"api", "GET", "/api/off", "CatchAll"},
		{"api", "GET", "/other", ""},
		{"", "GET", "/reboots/summary", "Literal"},
		{"v1/api", "GET", "/v1/api/reboots/x", "Param"},
	}
	for _, tt := range tests {
		t.Run(tt.prefix+" "+tt.method+" "+tt.path, func(t *testing.T) {
			fn, _, ok := newRouteTable(tt.prefix, fns).match(tt.method, tt.path)
			if tt.want == "" {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, tt.want, fn.name)
		})
	}
}

// FuzzRoute: any template that parses matches the path made by filling
// its parameters, and matching arbitrary paths never panics.
func FuzzRoute(f *testing.F) {
	f.Add("devices/{deviceId}/reboot", "devices/x/reboot")
	f.Add("files/{*rest}", "files/a/b")
	f.Add("items/{id:int}/{name?}", "items/1")
	f.Add("a/{b=c}", "a")
	f.Add("{x}", "%zz")
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		r, err := parseRoute(tmpl)
		if err != nil {
			return
		}
		table := &routeTable{prefix: "api", fns: []*function{{name: "F", route: r}}}
		table.match("GET", "/api/"+path)

		var segs []string
		for _, s := range r.segs {
			switch {
			case s.literal != "":
				segs = append(segs, s.literal)
			case len(s.constraint) == 0:
				segs = append(segs, "v")
			default:
				return // constrained values need their own generator
			}
		}
		if _, ok := r.match(segs); !ok {
			t.Fatalf("template %q does not match its own filled path %q", tmpl, strings.Join(segs, "/"))
		}
	})
}
