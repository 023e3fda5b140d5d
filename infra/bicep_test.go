package infra_test

// A small reader for the Bicep this repository writes, so the drift test can
// check infra/*.bicep without the Bicep CLI. It is not a Bicep compiler:
//
//   - lex: every character lands in exactly one token (whitespace and comments
//     are trivia tokens), so the token texts concatenate back to the input.
//     Strings keep ${...} interpolations whole, including nested strings.
//   - parse: top-level declarations (param, var, resource, module, output,
//     ...), each with its value as an expression. An expression is a flat list
//     of nodes: object and array literals (parsed recursively), strings,
//     identifiers, parenthesised groups, and any other token as-is. Operators
//     are not given precedence: the checks only need literals and names.
//
// Object properties and array items end at a newline or a comma, as in Bicep;
// newlines inside parentheses are ignored, also as in Bicep.

import (
	"fmt"
	"strconv"
	"strings"
)

type tokenKind int

const (
	tokTrivia  tokenKind = iota // whitespace other than newlines, comments
	tokNewline                  // "\n" (a "\r\n" pair is one token)
	tokIdent
	tokString // '...' with escapes and ${...}; or '''...'''
	tokNumber
	tokPunct
)

type btoken struct {
	kind tokenKind
	text string
	line int
}

// lex splits src into tokens. It fails on an unterminated string or comment
// and on characters Bicep does not allow outside strings.
func lex(src string) ([]btoken, error) {
	var toks []btoken
	line := 1
	for i := 0; i < len(src); {
		start := i
		kind, err := scan(src, &i)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		text := src[start:i]
		toks = append(toks, btoken{kind: kind, text: text, line: line})
		line += strings.Count(text, "\n")
	}
	return toks, nil
}

// twoCharPunct are the operators lexed as one token.
var twoCharPunct = []string{"==", "!=", "<=", ">=", "&&", "||", "??", "=~", "!~", "=>", "?.", ".?"}

func scan(src string, i *int) (tokenKind, error) {
	c := src[*i]
	switch {
	case c == '\n':
		*i++
		return tokNewline, nil
	case c == '\r' && strings.HasPrefix(src[*i:], "\r\n"):
		*i += 2
		return tokNewline, nil
	case c == ' ' || c == '\t' || c == '\r':
		for *i < len(src) && (src[*i] == ' ' || src[*i] == '\t' || (src[*i] == '\r' && !strings.HasPrefix(src[*i:], "\r\n"))) {
			*i++
		}
		return tokTrivia, nil
	case strings.HasPrefix(src[*i:], "//"), c == '#': // comments, #disable-next-line
		end := strings.IndexByte(src[*i:], '\n')
		if end < 0 {
			*i = len(src)
		} else {
			*i += end
		}
		return tokTrivia, nil
	case strings.HasPrefix(src[*i:], "/*"):
		end := strings.Index(src[*i+2:], "*/")
		if end < 0 {
			return 0, fmt.Errorf("unterminated comment")
		}
		*i += 2 + end + 2
		return tokTrivia, nil
	case strings.HasPrefix(src[*i:], "'''"):
		end := strings.Index(src[*i+3:], "'''")
		if end < 0 {
			return 0, fmt.Errorf("unterminated multi-line string")
		}
		*i += 3 + end + 3
		return tokString, nil
	case c == '\'':
		return tokString, scanString(src, i)
	case isIdentStart(c):
		for *i < len(src) && isIdentPart(src[*i]) {
			*i++
		}
		return tokIdent, nil
	case c >= '0' && c <= '9':
		for *i < len(src) && src[*i] >= '0' && src[*i] <= '9' {
			*i++
		}
		return tokNumber, nil
	case strings.IndexByte("{}[]():,.?!=<>&|+-*/%@", c) >= 0:
		for _, p := range twoCharPunct {
			if strings.HasPrefix(src[*i:], p) {
				*i += len(p)
				return tokPunct, nil
			}
		}
		*i++
		return tokPunct, nil
	}
	return 0, fmt.Errorf("unexpected character %q", c)
}

// scanString consumes a single-quoted string starting at src[*i], including
// any ${...} interpolations (which may hold strings and braces of their own).
func scanString(src string, i *int) error {
	*i++ // opening quote
	for *i < len(src) {
		switch {
		case src[*i] == '\\':
			*i += 2
		case src[*i] == '\'':
			*i++
			return nil
		case src[*i] == '\n':
			return fmt.Errorf("newline in string")
		case strings.HasPrefix(src[*i:], "${"):
			*i += 2
			if err := scanInterpolation(src, i); err != nil {
				return err
			}
		default:
			*i++
		}
	}
	return fmt.Errorf("unterminated string")
}

// scanInterpolation consumes an interpolated expression up to and including
// its closing brace.
func scanInterpolation(src string, i *int) error {
	depth := 0
	for *i < len(src) {
		switch src[*i] {
		case '\'':
			if err := scanString(src, i); err != nil {
				return err
			}
			continue
		case '{':
			depth++
		case '}':
			if depth == 0 {
				*i++
				return nil
			}
			depth--
		}
		*i++
	}
	return fmt.Errorf("unterminated interpolation")
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// Expression nodes.
type (
	expr []node
	node interface{ isNode() }

	object struct{ props []prop }
	prop   struct {
		key   string
		value expr
	}
	array struct {
		elems []expr // the items of a literal array
		loop  expr   // the `for x in coll` header of a loop; nil otherwise
		body  expr   // the loop body
	}
	str struct {
		raw   string // source text, quotes included
		value string // decoded; only meaningful if !interp
		// interp is true when the string has ${...} parts.
		interp bool
	}
	ident struct{ name string }
	group struct{ inner expr } // ( ... )
	other struct{ text string }
)

func (*object) isNode() {}
func (*array) isNode()  {}
func (*str) isNode()    {}
func (*ident) isNode()  {}
func (*group) isNode()  {}
func (*other) isNode()  {}

// decl is a top-level declaration.
type decl struct {
	keyword    string // param, var, resource, module, output, ...
	name       string // symbolic name
	typ        string // declared type; resource type@version; module path
	decorators []string
	value      expr // nil for a param without default
}

func (d decl) hasDecorator(name string) bool {
	for _, dec := range d.decorators {
		if dec == name {
			return true
		}
	}
	return false
}

type bicepFile struct{ decls []decl }

func (f *bicepFile) find(keyword, name string) (decl, bool) {
	for _, d := range f.decls {
		if d.keyword == keyword && d.name == name {
			return d, true
		}
	}
	return decl{}, false
}

func (f *bicepFile) all(keyword string) []decl {
	var out []decl
	for _, d := range f.decls {
		if d.keyword == keyword {
			out = append(out, d)
		}
	}
	return out
}

type bicepParser struct {
	toks []btoken // trivia removed
	pos  int
}

// parseBicep reads the declarations of a .bicep or .bicepparam file.
func parseBicep(src string) (*bicepFile, error) {
	all, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &bicepParser{}
	for _, t := range all {
		if t.kind != tokTrivia {
			p.toks = append(p.toks, t)
		}
	}
	f := &bicepFile{}
	var decorators []string
	for {
		p.skipNewlines()
		t, ok := p.peek()
		if !ok {
			return f, nil
		}
		if t.text == "@" {
			p.next()
			name, err := p.expect(tokIdent)
			if err != nil {
				return nil, err
			}
			for t, ok := p.peek(); ok && (t.text == "." || t.kind == tokIdent); t, ok = p.peek() {
				name = p.next() // sys.description: keep the last name
			}
			if t, ok := p.peek(); ok && t.text == "(" {
				if _, err := p.parseNode(); err != nil {
					return nil, err
				}
			}
			decorators = append(decorators, name.text)
			continue
		}
		d, err := p.parseDecl()
		if err != nil {
			return nil, err
		}
		d.decorators = decorators
		decorators = nil
		f.decls = append(f.decls, d)
	}
}

func (p *bicepParser) parseDecl() (decl, error) {
	kw, err := p.expect(tokIdent)
	if err != nil {
		return decl{}, err
	}
	d := decl{keyword: kw.text}
	switch kw.text {
	case "param", "var", "output", "type", "metadata":
		name, err := p.expect(tokIdent)
		if err != nil {
			return decl{}, err
		}
		d.name = name.text
		// The type runs up to "=" (or the end of the line for a param with no default).
		var typ []string
		for t, ok := p.peek(); ok && t.text != "=" && t.kind != tokNewline; t, ok = p.peek() {
			typ = append(typ, p.next().text)
		}
		d.typ = strings.Join(typ, "")
	case "resource", "module":
		name, err := p.expect(tokIdent)
		if err != nil {
			return decl{}, err
		}
		typ, err := p.expect(tokString)
		if err != nil {
			return decl{}, err
		}
		d.name, d.typ = name.text, unquote(typ.text)
		if t, ok := p.peek(); ok && t.text == "existing" {
			p.next()
			d.keyword += " existing"
		}
	case "targetScope":
	case "using", "import", "func", "extension":
		// Not needed by the checks: keep the rest of the line as the value.
		d.value, err = p.parseExpr(stopAtNewline)
		return d, err
	default:
		return decl{}, fmt.Errorf("line %d: unexpected %q at top level", kw.line, kw.text)
	}
	if t, ok := p.peek(); !ok || t.text != "=" {
		if d.keyword == "param" {
			return d, nil
		}
		return decl{}, fmt.Errorf("line %d: %s %s: expected =", kw.line, d.keyword, d.name)
	}
	p.next()
	d.value, err = p.parseExpr(stopAtNewline)
	return d, err
}

type stopFunc func(btoken) bool

func stopAtNewline(t btoken) bool { return t.kind == tokNewline }

func stopInObject(t btoken) bool { return t.kind == tokNewline || t.text == "," || t.text == "}" }

func stopInArray(t btoken) bool { return t.kind == tokNewline || t.text == "," || t.text == "]" }

func stopInGroup(t btoken) bool { return t.text == ")" }

// parseExpr reads nodes up to (not including) a stop btoken or the end.
func (p *bicepParser) parseExpr(stop stopFunc) (expr, error) {
	var e expr
	for {
		t, ok := p.peek()
		if !ok || stop(t) {
			return e, nil
		}
		if t.kind == tokNewline { // only reachable inside groups
			p.next()
			continue
		}
		n, err := p.parseNode()
		if err != nil {
			return nil, err
		}
		e = append(e, n)
	}
}

func (p *bicepParser) parseNode() (node, error) {
	t := p.next()
	switch {
	case t.text == "{":
		return p.parseObject(t)
	case t.text == "[":
		return p.parseArray(t)
	case t.text == "(":
		inner, err := p.parseExpr(stopInGroup)
		if err != nil {
			return nil, err
		}
		if _, err := p.expectText(")", t); err != nil {
			return nil, err
		}
		return &group{inner: inner}, nil
	case t.text == "}" || t.text == "]" || t.text == ")":
		return nil, fmt.Errorf("line %d: unbalanced %q", t.line, t.text)
	case t.kind == tokString:
		return newStr(t.text), nil
	case t.kind == tokIdent:
		return &ident{name: t.text}, nil
	}
	return &other{text: t.text}, nil
}

func (p *bicepParser) parseObject(open btoken) (node, error) {
	o := &object{}
	for {
		p.skipSeparators()
		t, ok := p.peek()
		if !ok {
			return nil, fmt.Errorf("line %d: unterminated object", open.line)
		}
		if t.text == "}" {
			p.next()
			return o, nil
		}
		key := p.next()
		switch key.kind {
		case tokIdent:
		case tokString:
			key.text = unquote(key.text)
		default:
			return nil, fmt.Errorf("line %d: object key %q", key.line, key.text)
		}
		if _, err := p.expectText(":", key); err != nil {
			return nil, err
		}
		value, err := p.parseExpr(stopInObject)
		if err != nil {
			return nil, err
		}
		o.props = append(o.props, prop{key: key.text, value: value})
	}
}

func (p *bicepParser) parseArray(open btoken) (node, error) {
	a := &array{}
	p.skipSeparators()
	if t, ok := p.peek(); ok && t.text == "for" {
		header, err := p.parseExpr(func(t btoken) bool { return t.text == ":" })
		if err != nil {
			return nil, err
		}
		if _, err := p.expectText(":", open); err != nil {
			return nil, err
		}
		a.loop = header
		if a.body, err = p.parseExpr(func(t btoken) bool { return t.text == "]" }); err != nil {
			return nil, err
		}
		_, err = p.expectText("]", open)
		return a, err
	}
	for {
		p.skipSeparators()
		t, ok := p.peek()
		if !ok {
			return nil, fmt.Errorf("line %d: unterminated array", open.line)
		}
		if t.text == "]" {
			p.next()
			return a, nil
		}
		item, err := p.parseExpr(stopInArray)
		if err != nil {
			return nil, err
		}
		a.elems = append(a.elems, item)
	}
}

func (p *bicepParser) skipNewlines() {
	for t, ok := p.peek(); ok && t.kind == tokNewline; t, ok = p.peek() {
		p.next()
	}
}

func (p *bicepParser) skipSeparators() {
	for t, ok := p.peek(); ok && (t.kind == tokNewline || t.text == ","); t, ok = p.peek() {
		p.next()
	}
}

func (p *bicepParser) peek() (btoken, bool) {
	if p.pos >= len(p.toks) {
		return btoken{}, false
	}
	return p.toks[p.pos], true
}

func (p *bicepParser) next() btoken {
	t := p.toks[p.pos]
	p.pos++
	return t
}

func (p *bicepParser) expect(kind tokenKind) (btoken, error) {
	t, ok := p.peek()
	if !ok || t.kind != kind {
		return btoken{}, fmt.Errorf("line %d: unexpected %q", t.line, t.text)
	}
	return p.next(), nil
}

func (p *bicepParser) expectText(text string, from btoken) (btoken, error) {
	t, ok := p.peek()
	if !ok {
		return btoken{}, fmt.Errorf("line %d: missing %q", from.line, text)
	}
	if t.text != text {
		return btoken{}, fmt.Errorf("line %d: want %q, got %q", t.line, text, t.text)
	}
	return p.next(), nil
}

func newStr(raw string) *str {
	s := &str{raw: raw}
	if strings.HasPrefix(raw, "'''") {
		s.value = strings.TrimSuffix(strings.TrimPrefix(raw, "'''"), "'''")
		return s
	}
	body := raw[1 : len(raw)-1]
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		switch {
		case strings.HasPrefix(body[i:], "${"):
			s.interp = true
			b.WriteString(body[i:])
			s.value = b.String()
			return s
		case body[i] == '\\' && i+1 < len(body):
			i++
			b.WriteString(unescape(body[i]))
		default:
			b.WriteByte(body[i])
		}
	}
	s.value = b.String()
	return s
}

func unescape(c byte) string {
	switch c {
	case 'n':
		return "\n"
	case 'r':
		return "\r"
	case 't':
		return "\t"
	}
	return string(c) // \\ \' \$
}

func unquote(raw string) string { return newStr(raw).value }

// Queries on expressions.

// single returns the only node of e, if e has exactly one.
func (e expr) single() (node, bool) {
	if len(e) != 1 {
		return nil, false
	}
	return e[0], true
}

// literal returns e's value if e is one string without interpolation.
func (e expr) literal() (string, bool) {
	n, ok := e.single()
	if !ok {
		return "", false
	}
	s, ok := n.(*str)
	if !ok || s.interp {
		return "", false
	}
	return s.value, true
}

// identName returns the identifier if e is one.
func (e expr) identName() (string, bool) {
	n, ok := e.single()
	if !ok {
		return "", false
	}
	id, ok := n.(*ident)
	if !ok {
		return "", false
	}
	return id.name, true
}

// body returns the object a resource or module declaration creates: the last
// object of its value (after any `if (...)`), or a loop's body object.
func (e expr) body() (*object, bool) {
	for i := len(e) - 1; i >= 0; i-- {
		switch n := e[i].(type) {
		case *object:
			return n, true
		case *array:
			if n.loop != nil {
				return n.body.body()
			}
		}
	}
	return nil, false
}

// text renders e roughly as written (tokens joined by spaces), for messages
// and substring checks.
func (e expr) text() string {
	var parts []string
	for _, n := range e {
		switch n := n.(type) {
		case *object:
			var props []string
			for _, p := range n.props {
				props = append(props, p.key+": "+p.value.text())
			}
			parts = append(parts, "{ "+strings.Join(props, ", ")+" }")
		case *array:
			if n.loop != nil {
				parts = append(parts, "[ "+n.loop.text()+" : "+n.body.text()+" ]")
				continue
			}
			var items []string
			for _, it := range n.elems {
				items = append(items, it.text())
			}
			parts = append(parts, "[ "+strings.Join(items, ", ")+" ]")
		case *str:
			parts = append(parts, n.raw)
		case *ident:
			parts = append(parts, n.name)
		case *group:
			parts = append(parts, "( "+n.inner.text()+" )")
		case *other:
			parts = append(parts, n.text)
		}
	}
	return strings.Join(parts, " ")
}

func (o *object) get(key string) (expr, bool) {
	for _, p := range o.props {
		if p.key == key {
			return p.value, true
		}
	}
	return nil, false
}

// path follows nested object keys, e.g. path("properties", "routing").
func (o *object) path(keys ...string) (expr, bool) {
	cur := o
	var e expr
	for i, k := range keys {
		v, ok := cur.get(k)
		if !ok {
			return nil, false
		}
		e = v
		if i < len(keys)-1 {
			n, ok := v.single()
			if !ok {
				return nil, false
			}
			if cur, ok = n.(*object); !ok {
				return nil, false
			}
		}
	}
	return e, true
}

func (e expr) object() (*object, bool) {
	n, ok := e.single()
	if !ok {
		return nil, false
	}
	o, ok := n.(*object)
	return o, ok
}

func (e expr) array() (*array, bool) {
	n, ok := e.single()
	if !ok {
		return nil, false
	}
	a, ok := n.(*array)
	return a, ok
}

// resolver looks up a name (a var or param) and returns its value.
type resolver func(name string) (expr, bool)

// objectEntries gathers the properties of every object e can evaluate to,
// seen through function calls and conditionals (`union(a, c ? {...} : {})`)
// and through identifiers resolve knows. Nested objects (property values) are
// not entered. Each property is returned with the expression it was found in.
func (e expr) objectEntries(resolve resolver) []prop {
	var out []prop
	seen := map[string]bool{}
	var walk func(e expr)
	walk = func(e expr) {
		for i, n := range e {
			switch n := n.(type) {
			case *object:
				out = append(out, n.props...)
			case *group:
				walk(n.inner)
			case *ident:
				// A name followed by "." is a member access (module.outputs.x), not
				// a var; function names never resolve.
				if i+1 < len(e) {
					if g, ok := e[i+1].(*other); ok && (g.text == "." || g.text == "?.") {
						continue
					}
				}
				if seen[n.name] {
					continue
				}
				seen[n.name] = true
				if v, ok := resolve(n.name); ok {
					walk(v)
				}
			}
		}
	}
	walk(e)
	return out
}

// stringValue returns the string value of e: a literal, or a name
// whose value resolves (transitively) to a literal.
func (e expr) stringValue(resolve resolver) (string, bool) {
	for range 8 { // bounded: names may refer to names
		if s, ok := e.literal(); ok {
			return s, true
		}
		name, ok := e.identName()
		if !ok {
			return "", false
		}
		if e, ok = resolve(name); !ok {
			return "", false
		}
	}
	return "", false
}

// String forms for test failure messages.
func (d decl) String() string {
	return fmt.Sprintf("%s %s %s = %s", d.keyword, d.name, strconv.Quote(d.typ), d.value.text())
}
