package infra_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const sampleBicep = `// header
targetScope = 'resourceGroup'

@description('It\'s a name') // trailing comment
@minLength(3)
param name string = 'hub-${uniqueString('x', '}')}'

@secure()
param key string

@allowed([
  'a'
  'b'
])
param mode string = 'a'

var groups = [
  'functions', 'localdev'
]

#disable-next-line no-unused-vars
var settings = union({
  A: 'one'
  'B-2': name
}, mode == 'b' ? {
  C: '@Microsoft.KeyVault(VaultName=${name};SecretName=s)'
} : {})

resource hub 'Microsoft.Devices/IotHubs@2023-06-30' = {
  name: name
  properties: {
    routing: {
      routes: [
        {
          source: 'TwinChangeEvents'
          endpointNames: [ 'events' ]
        }
      ]
    }
  }
}

resource cg 'Microsoft.Devices/IotHubs/eventHubEndpoints/ConsumerGroups@2023-06-30' = [for g in groups: {
  name: '${hub.name}/events/${g}'
}]

resource old 'Microsoft.Storage/storageAccounts@2023-05-01' existing = if (mode == 'a') {
  name: 'x'
}

output host string = hub.properties.hostName
`

func TestLexIsLossless(t *testing.T) {
	toks, err := lex(sampleBicep)
	require.NoError(t, err)

	var b strings.Builder
	for _, tok := range toks {
		b.WriteString(tok.text)
	}
	require.Equal(t, sampleBicep, b.String())
}

func TestLexStrings(t *testing.T) {
	tests := []struct {
		src        string
		wantValue  string
		wantInterp bool
	}{
		{src: `'plain'`, wantValue: "plain"},
		{src: `'it\'s'`, wantValue: "it's"},
		{src: `'a\\b\$c'`, wantValue: `a\b$c`},
		{src: `'${x}'`, wantInterp: true},
		{src: `'a${f('}', {b: 'c'})}z'`, wantInterp: true},
		{src: "'''multi\n'line'\n'''", wantValue: "multi\n'line'\n"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			toks, err := lex(tt.src)
			require.NoError(t, err)
			require.Len(t, toks, 1)
			require.Equal(t, tokString, toks[0].kind)

			s := newStr(toks[0].text)
			require.Equal(t, tt.wantInterp, s.interp)
			if !tt.wantInterp {
				require.Equal(t, tt.wantValue, s.value)
			}
		})
	}
}

func TestLexErrors(t *testing.T) {
	for _, src := range []string{`'open`, "'a\nb'", `'${x'`, `/* open`, `'''open`, "param ~"} {
		t.Run(src, func(t *testing.T) {
			_, err := lex(src)
			require.Error(t, err)
		})
	}
}

func TestParseDeclarations(t *testing.T) {
	f, err := parseBicep(sampleBicep)
	require.NoError(t, err)

	name, ok := f.find("param", "name")
	require.True(t, ok)
	require.Equal(t, "string", name.typ)
	require.Equal(t, []string{"description", "minLength"}, name.decorators)

	key, ok := f.find("param", "key")
	require.True(t, ok)
	require.True(t, key.hasDecorator("secure"))
	require.Nil(t, key.value)

	groups, ok := f.find("var", "groups")
	require.True(t, ok)
	arr, ok := groups.value.array()
	require.True(t, ok)
	require.Len(t, arr.elems, 2)

	hub, ok := f.find("resource", "hub")
	require.True(t, ok)
	require.Equal(t, "Microsoft.Devices/IotHubs@2023-06-30", hub.typ)
	body, ok := hub.value.body()
	require.True(t, ok)
	routes, ok := body.path("properties", "routing", "routes")
	require.True(t, ok)
	routeList, ok := routes.array()
	require.True(t, ok)
	require.Len(t, routeList.elems, 1)
	route, ok := routeList.elems[0].object()
	require.True(t, ok)
	source, _ := route.get("source")
	got, ok := source.literal()
	require.True(t, ok)
	require.Equal(t, "TwinChangeEvents", got)

	cg, ok := f.find("resource", "cg")
	require.True(t, ok)
	cgBody, ok := cg.value.body()
	require.True(t, ok)
	_, ok = cgBody.get("name")
	require.True(t, ok)

	_, ok = f.find("resource existing", "old")
	require.True(t, ok)
	_, ok = f.find("output", "host")
	require.True(t, ok)
}

func TestObjectEntriesSeeThroughUnionAndConditionals(t *testing.T) {
	f, err := parseBicep(sampleBicep)
	require.NoError(t, err)
	resolve := func(name string) (expr, bool) {
		for _, kw := range []string{"var", "param"} {
			if d, ok := f.find(kw, name); ok && d.value != nil {
				return d.value, true
			}
		}
		return nil, false
	}

	e := expr{&ident{name: "settings"}}
	var keys []string
	for _, p := range e.objectEntries(resolve) {
		keys = append(keys, p.key)
	}
	require.Equal(t, []string{"A", "B-2", "C"}, keys)

	mode, _ := f.find("param", "mode")
	got, ok := expr{&ident{name: "mode"}}.stringValue(resolve)
	require.True(t, ok, mode.String())
	require.Equal(t, "a", got)
}

func TestParseErrors(t *testing.T) {
	for _, src := range []string{
		"var x = {\n a: 1\n",
		"var x = [\n 1\n",
		"var x = )",
		"resource r = {}",
		"banana x = 1",
		"var x = { 1: 2 }",
	} {
		t.Run(src, func(t *testing.T) {
			_, err := parseBicep(src)
			require.Error(t, err)
		})
	}
}

// FuzzBicep checks the lexer is lossless and that neither stage panics or
// loops on any input.
func FuzzBicep(f *testing.F) {
	f.Add(sampleBicep)
	f.Add("var x = '${'}'}'")
	f.Add("param p string\n@secure()\nparam q string")
	f.Add("var a = [for i in range(0, 3): { n: i }]")
	f.Add("var s = '''\n${not interpolated}\n'''")
	f.Add("var c = a ? { b: 1 } : {}\r\nvar d = (\n1 +\n2)")
	f.Fuzz(func(t *testing.T, src string) {
		toks, err := lex(src)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, tok := range toks {
			require.NotEmpty(t, tok.text)
			b.WriteString(tok.text)
		}
		require.Equal(t, src, b.String())
		_, _ = parseBicep(src)
	})
}
