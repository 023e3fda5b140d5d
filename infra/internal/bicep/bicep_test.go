package bicep_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/infra/internal/bicep"
)

const sample = `// header
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

func mustParse(t *testing.T, src string) *bicep.File {
	t.Helper()
	f, err := bicep.Parse(src)
	require.NoError(t, err)
	return f
}

// resolverFor resolves the vars and params (defaults) of f.
func resolverFor(f *bicep.File) bicep.Resolver {
	return func(name string) (bicep.Expr, bool) {
		for _, kw := range []string{"var", "param"} {
			if d, ok := f.Find(kw, name); ok && d.Value != nil {
				return d.Value, true
			}
		}
		return nil, false
	}
}

func TestLexIsLossless(t *testing.T) {
	for _, src := range []string{sample, "", "\r\n", "a\r\rb", "var s = '''\nx\n'''\n// end"} {
		toks, err := bicep.Lex(src)
		require.NoError(t, err)

		var b strings.Builder
		for _, tok := range toks {
			b.WriteString(tok.Text)
		}
		require.Equal(t, src, b.String())
	}
}

func TestLexTokens(t *testing.T) {
	type tok struct {
		kind bicep.TokenKind
		text string
		line int
	}
	tests := []struct {
		name string
		src  string
		want []tok
	}{
		{
			name: "operators are one token",
			src:  "a==b?.c",
			want: []tok{
				{bicep.TokenIdent, "a", 1}, {bicep.TokenPunct, "==", 1}, {bicep.TokenIdent, "b", 1},
				{bicep.TokenPunct, "?.", 1}, {bicep.TokenIdent, "c", 1},
			},
		},
		{
			name: "crlf is one newline",
			src:  "x\r\n42",
			want: []tok{{bicep.TokenIdent, "x", 1}, {bicep.TokenNewline, "\r\n", 1}, {bicep.TokenNumber, "42", 2}},
		},
		{
			name: "pragma and comments are trivia",
			src:  "#disable-next-line r\n/* a\nb */ // c",
			want: []tok{
				{bicep.TokenTrivia, "#disable-next-line r", 1}, {bicep.TokenNewline, "\n", 1},
				{bicep.TokenTrivia, "/* a\nb */", 2}, {bicep.TokenTrivia, " ", 3}, {bicep.TokenTrivia, "// c", 3},
			},
		},
		{
			name: "multi-line string counts its lines",
			src:  "'''a\nb'''\nz",
			want: []tok{{bicep.TokenString, "'''a\nb'''", 1}, {bicep.TokenNewline, "\n", 2}, {bicep.TokenIdent, "z", 3}},
		},
		{
			name: "decorator",
			src:  "@minValue(40)",
			want: []tok{
				{bicep.TokenPunct, "@", 1}, {bicep.TokenIdent, "minValue", 1}, {bicep.TokenPunct, "(", 1},
				{bicep.TokenNumber, "40", 1}, {bicep.TokenPunct, ")", 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toks, err := bicep.Lex(tt.src)
			require.NoError(t, err)
			var got []tok
			for _, tk := range toks {
				got = append(got, tok{tk.Kind, tk.Text, tk.Line})
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestLexStrings(t *testing.T) {
	tests := []struct {
		src        string
		wantValue  string
		wantInterp bool
	}{
		{src: `'plain'`, wantValue: "plain"},
		{src: `'it\'s'`, wantValue: "it's"},
		{src: `'a\\b\$c\n'`, wantValue: "a\\b$c\n"},
		{src: `'${x}'`, wantValue: "", wantInterp: true},
		{src: `'pre${x}'`, wantValue: "pre", wantInterp: true},
		{src: `'a${f('}', {b: 'c'})}z'`, wantValue: "a", wantInterp: true},
		{src: "'''multi\n'line'\n${not interpolated}'''", wantValue: "multi\n'line'\n${not interpolated}"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			toks, err := bicep.Lex(tt.src)
			require.NoError(t, err)
			require.Len(t, toks, 1)
			require.Equal(t, bicep.TokenString, toks[0].Kind)

			f := mustParse(t, "var v = "+tt.src)
			d, _ := f.Find("var", "v")
			n, ok := d.Value.Single()
			require.True(t, ok)
			s := n.(*bicep.Str)
			require.Equal(t, tt.src, s.Raw)
			require.Equal(t, tt.wantInterp, s.Interp)
			require.Equal(t, tt.wantValue, s.Value)
		})
	}
}

func TestLexErrors(t *testing.T) {
	tests := []struct {
		src     string
		wantErr string
	}{
		{src: `'open`, wantErr: "line 1: unterminated string"},
		{src: `'ends in escape\`, wantErr: "unterminated string"},
		{src: "\n'a\nb'", wantErr: "line 2: newline in string"},
		{src: `'${x'`, wantErr: "unterminated"},
		{src: `'${x}`, wantErr: "unterminated string"},
		{src: `/* open`, wantErr: "unterminated comment"},
		{src: `'''open`, wantErr: "unterminated multi-line string"},
		{src: "param ~", wantErr: `unexpected character '~'`},
		{src: "var s = \"double\"", wantErr: `unexpected character '"'`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := bicep.Lex(tt.src)
			require.ErrorContains(t, err, tt.wantErr)
			_, err = bicep.Parse(tt.src)
			require.ErrorContains(t, err, tt.wantErr, "Parse must report the lexer's error")
		})
	}
}

func TestParseDeclarations(t *testing.T) {
	f := mustParse(t, sample)

	name, ok := f.Find("param", "name")
	require.True(t, ok)
	require.Equal(t, "string", name.Type)
	require.Equal(t, 6, name.Line)
	require.Len(t, name.Decorators, 2)
	require.Equal(t, "description", name.Decorators[0].Name)
	require.Equal(t, "minLength", name.Decorators[1].Name)

	key, ok := f.Find("param", "key")
	require.True(t, ok)
	require.True(t, key.HasDecorator("secure"))
	require.False(t, key.HasDecorator("description"))
	require.Nil(t, key.Value)

	groups, ok := f.Find("var", "groups")
	require.True(t, ok)
	arr, ok := groups.Value.Array()
	require.True(t, ok)
	require.Len(t, arr.Elems, 2)

	hub, ok := f.Find("resource", "hub")
	require.True(t, ok)
	require.Equal(t, "Microsoft.Devices/IotHubs@2023-06-30", hub.Type)
	body, ok := hub.Value.Body()
	require.True(t, ok)
	routes, ok := body.Path("properties", "routing", "routes")
	require.True(t, ok)
	routeList, ok := routes.Array()
	require.True(t, ok)
	require.Len(t, routeList.Elems, 1)
	route, ok := routeList.Elems[0].Object()
	require.True(t, ok)
	source, _ := route.Get("source")
	got, ok := source.Literal()
	require.True(t, ok)
	require.Equal(t, "TwinChangeEvents", got)
	_, ok = body.Path("properties", "missing")
	require.False(t, ok)
	_, ok = body.Path("name", "deeper")
	require.False(t, ok, "a path through a non-object ends")

	cg, ok := f.Find("resource", "cg")
	require.True(t, ok)
	loop, ok := cg.Value.Array()
	require.True(t, ok)
	require.Equal(t, "for g in groups", loop.Loop.Text())
	cgBody, ok := cg.Value.Body()
	require.True(t, ok)
	cgName, ok := cgBody.Get("name")
	require.True(t, ok)
	require.Equal(t, "'${hub.name}/events/${g}'", cgName.Text())

	old, ok := f.Find("resource existing", "old")
	require.True(t, ok)
	oldBody, ok := old.Value.Body()
	require.True(t, ok, "the body follows an if (...)")
	oldName, _ := oldBody.Get("name")
	require.Equal(t, "'x'", oldName.Text())

	out, ok := f.Find("output", "host")
	require.True(t, ok)
	require.Equal(t, "hub . properties . hostName", out.Value.Text())

	require.Len(t, f.All("resource"), 2)
	require.Len(t, f.All("param"), 3)
}

func TestParseDecoratorArguments(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		wantName string
		wantArgs []string
	}{
		{name: "integer", src: "@minValue(40)\nparam p int", wantName: "minValue", wantArgs: []string{"40"}},
		{name: "negative", src: "@minValue(-1)\nparam p int", wantName: "minValue", wantArgs: []string{"- 1"}},
		{name: "no arguments", src: "@secure()\nparam p string", wantName: "secure"},
		{name: "empty literals", src: "@metadata({ a: [], b: {}, c: f() })\nparam p string", wantName: "metadata", wantArgs: []string{"{ a: [], b: {}, c: f () }"}},
		{name: "qualified name keeps the last part", src: "@sys.description('d')\nparam p string", wantName: "description", wantArgs: []string{"'d'"}},
		{name: "array over lines", src: "@allowed([\n  512\n  2048\n])\nparam p int", wantName: "allowed", wantArgs: []string{"[ 512, 2048 ]"}},
		{name: "several arguments", src: "@export(f(a, b), 'c')\nfunc x() string => 'x'", wantName: "export", wantArgs: []string{"f ( a , b )", "'c'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.src)
			require.Len(t, f.Decls, 1)
			dec, ok := f.Decls[0].Decorator(tt.wantName)
			require.True(t, ok, "decorators: %+v", f.Decls[0].Decorators)
			var args []string
			for _, a := range dec.Args {
				args = append(args, a.Text())
			}
			require.Equal(t, tt.wantArgs, args)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src     string
		wantErr string
	}{
		{src: "var x = {\n a: 1\n", wantErr: "line 1: unterminated object"},
		{src: "var x = [\n 1\n", wantErr: "line 1: unterminated array"},
		{src: "var x = )", wantErr: `unbalanced ")"`},
		{src: "var x = (1", wantErr: `missing ")"`},
		{src: "resource r = {}", wantErr: "unexpected \"=\""},
		{src: "banana x = 1", wantErr: `unexpected "banana" at top level`},
		{src: "var x = { 1: 2 }", wantErr: `object key "1"`},
		{src: "var x = { a 2 }", wantErr: `want ":"`},
		{src: "var x", wantErr: "var x: expected ="},
		{src: "param", wantErr: "unexpected end of file"},
		{src: "@secure()\n", wantErr: "decorator @secure before the end of the file"},
		{src: "@sys.\nparam p string", wantErr: "unexpected"},
		{src: "var l = [for i in x 1]", wantErr: `unbalanced "]"`},
		{src: "var l = [for i in x", wantErr: `missing ":"`},
		{src: "var l = [for i in x: i", wantErr: `missing "]"`},
		{src: "var d = " + strings.Repeat("(", 101) + strings.Repeat(")", 101), wantErr: "nested more than 100 levels deep"},
		{src: "var d = " + strings.Repeat("[", 200), wantErr: "nested more than 100 levels deep"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := bicep.Parse(tt.src)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}

	_, err := bicep.Parse("var d = " + strings.Repeat("(", 100) + "1" + strings.Repeat(")", 100))
	require.NoError(t, err, "100 levels are allowed")
}

func TestObjectEntriesSeeThroughUnionAndConditionals(t *testing.T) {
	f := mustParse(t, sample)

	var keys []string
	for _, p := range (bicep.Expr{&bicep.Ident{Name: "settings"}}).ObjectEntries(resolverFor(f)) {
		keys = append(keys, p.Key)
	}
	require.Equal(t, []string{"A", "B-2", "C"}, keys)
}

func TestObjectEntriesEndOnCyclesAndSkipMembers(t *testing.T) {
	f := mustParse(t, "var a = union(b, { x: 1 })\nvar b = union(a, { y: 2 }, m.outputs.z)\nvar m = { z: 3 }")

	var keys []string
	for _, p := range (bicep.Expr{&bicep.Ident{Name: "a"}}).ObjectEntries(resolverFor(f)) {
		keys = append(keys, p.Key)
	}
	require.Equal(t, []string{"y", "x"}, keys, "m.outputs.z is a member access, not the var m")
}

func TestStringValue(t *testing.T) {
	f := mustParse(t, "param mode string = 'a'\nvar alias = mode\nvar loop1 = loop2\nvar loop2 = loop1\nvar interp = '${mode}'\nvar n = 3")
	tests := []struct {
		name   string
		want   string
		wantOK bool
	}{
		{name: "mode", want: "a", wantOK: true},
		{name: "alias", want: "a", wantOK: true},
		{name: "loop1"},
		{name: "interp"},
		{name: "n"},
		{name: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := (bicep.Expr{&bicep.Ident{Name: tt.name}}).StringValue(resolverFor(f))
			require.Equal(t, tt.wantOK, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestExprInt(t *testing.T) {
	tests := []struct {
		src    string
		want   int64
		wantOK bool
	}{
		{src: "40", want: 40, wantOK: true},
		{src: "-3", want: -3, wantOK: true},
		{src: "0", want: 0, wantOK: true},
		{src: "'40'"},
		{src: "4 + 1"},
		{src: "- - 1"},
		{src: "99999999999999999999"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			f := mustParse(t, "var v = "+tt.src)
			d, _ := f.Find("var", "v")
			got, ok := d.Value.Int()
			require.Equal(t, tt.wantOK, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestCheckValue(t *testing.T) {
	const params = `
@minValue(40)
@maxValue(1000)
param count int

@allowed([
  512
  2048
])
param memory int

@allowed([
  'custom'
  'IoTHubDataContributor'
])
param role string

@minLength(3)
@maxLength(5)
param prefix string

@minLength(1)
param groups array

param free string
`
	f := mustParse(t, params)
	tests := []struct {
		param   string
		value   string
		wantErr string // "" for valid; "not constant" for ErrNotConstant
	}{
		{param: "count", value: "40"},
		{param: "count", value: "1000"},
		{param: "count", value: "39", wantErr: "param count: value 39 is below @minValue(40)"},
		{param: "count", value: "1", wantErr: "below @minValue(40)"},
		{param: "count", value: "1001", wantErr: "value 1001 is above @maxValue(1000)"},
		{param: "count", value: "-40", wantErr: "below"},
		{param: "count", value: "other", wantErr: "not constant"},
		{param: "memory", value: "2048"},
		{param: "memory", value: "1024", wantErr: "1024 is not one of [ 512, 2048 ]"},
		{param: "memory", value: "'2048'", wantErr: "is not one of"},
		{param: "role", value: "'custom'"},
		{param: "role", value: "'Custom'", wantErr: "is not one of"},
		{param: "role", value: "'${x}'", wantErr: "not constant"},
		{param: "prefix", value: "'abc'"},
		{param: "prefix", value: "'ab'", wantErr: "length 2 is below @minLength(3)"},
		{param: "prefix", value: "'abcdef'", wantErr: "length 6 is above @maxLength(5)"},
		{param: "prefix", value: "'äöü'"},
		{param: "groups", value: "[ 'a' ]"},
		{param: "groups", value: "[]", wantErr: "length 0 is below @minLength(1)"},
		{param: "free", value: "anything()"},
	}
	for _, tt := range tests {
		t.Run(tt.param+"="+tt.value, func(t *testing.T) {
			d, ok := f.Find("param", tt.param)
			require.True(t, ok)
			v := mustParse(t, "var v = "+tt.value)
			value, _ := v.Find("var", "v")

			err := d.CheckValue(value.Value)

			switch tt.wantErr {
			case "":
				require.NoError(t, err)
			case "not constant":
				require.True(t, errors.Is(err, bicep.ErrNotConstant), "err = %v", err)
			default:
				require.ErrorContains(t, err, tt.wantErr)
			}
		})
	}
}

func TestCheckValueRejectsMalformedDecorators(t *testing.T) {
	for _, src := range []string{
		"@minValue('40')\nparam p int",
		"@minValue(1, 2)\nparam p int",
		"@allowed('a')\nparam p string",
		"@allowed([for x in y: x])\nparam p string",
	} {
		t.Run(src, func(t *testing.T) {
			f := mustParse(t, src)
			err := f.Decls[0].CheckValue(bicep.Expr{&bicep.Number{Text: "1"}})
			require.Error(t, err)
			require.False(t, errors.Is(err, bicep.ErrNotConstant), "a malformed decorator is the template's fault: %v", err)
		})
	}
}
