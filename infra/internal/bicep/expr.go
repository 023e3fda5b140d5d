package bicep

import (
	"strconv"
	"strings"
)

// Expr is an expression: a flat list of nodes.
type Expr []Node

// Node is one element of an [Expr]: *Object, *Array, *Str, *Number, *Ident,
// *Group or *Other.
type Node interface{ isNode() }

type (
	// Object is an object literal.
	Object struct{ Props []Prop }
	// Prop is one property of an object literal.
	Prop struct {
		Key   string
		Value Expr
	}
	// Array is an array literal or a `[for ...: body]` loop.
	Array struct {
		Elems []Expr // the items of a literal array
		Loop  Expr   // the `for x in coll` header of a loop; nil otherwise
		Body  Expr   // the loop body
	}
	// Str is a string literal.
	Str struct {
		Raw    string // source text, quotes included
		Value  string // decoded; up to the first ${ when Interp
		Interp bool   // the string has ${...} parts
	}
	// Number is an integer literal (Bicep has no other number literals).
	Number struct{ Text string }
	// Ident is an identifier: a name, a function name, true, false, null.
	Ident struct{ Name string }
	// Group is a parenthesised expression or argument list.
	Group struct{ Inner Expr }
	// Other is any other token, such as an operator or a comma.
	Other struct{ Text string }
)

func (*Object) isNode() {}
func (*Array) isNode()  {}
func (*Str) isNode()    {}
func (*Number) isNode() {}
func (*Ident) isNode()  {}
func (*Group) isNode()  {}
func (*Other) isNode()  {}

func newStr(raw string) *Str {
	s := &Str{Raw: raw}
	if strings.HasPrefix(raw, "'''") {
		s.Value = strings.TrimSuffix(strings.TrimPrefix(raw, "'''"), "'''")
		return s
	}
	body := raw[1 : len(raw)-1]
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		switch {
		case strings.HasPrefix(body[i:], "${"):
			s.Interp = true
			s.Value = b.String()
			return s
		case body[i] == '\\' && i+1 < len(body):
			i++
			b.WriteString(unescape(body[i]))
		default:
			b.WriteByte(body[i])
		}
	}
	s.Value = b.String()
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

func unquote(raw string) string { return newStr(raw).Value }

// Single returns the only node of e, if e has exactly one.
func (e Expr) Single() (Node, bool) {
	if len(e) != 1 {
		return nil, false
	}
	return e[0], true
}

// Literal returns e's value if e is one string without interpolation.
func (e Expr) Literal() (string, bool) {
	n, ok := e.Single()
	if !ok {
		return "", false
	}
	s, ok := n.(*Str)
	if !ok || s.Interp {
		return "", false
	}
	return s.Value, true
}

// Int returns e's value if e is an integer literal, optionally negated.
func (e Expr) Int() (int64, bool) {
	sign := int64(1)
	if len(e) == 2 {
		if o, ok := e[0].(*Other); ok && o.Text == "-" {
			sign, e = -1, e[1:]
		}
	}
	n, ok := e.Single()
	if !ok {
		return 0, false
	}
	num, ok := n.(*Number)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(num.Text, 10, 64)
	if err != nil {
		return 0, false
	}
	return sign * v, true
}

// IdentName returns the identifier if e is one.
func (e Expr) IdentName() (string, bool) {
	n, ok := e.Single()
	if !ok {
		return "", false
	}
	id, ok := n.(*Ident)
	if !ok {
		return "", false
	}
	return id.Name, true
}

// Object returns e's object literal if e is one.
func (e Expr) Object() (*Object, bool) {
	n, ok := e.Single()
	if !ok {
		return nil, false
	}
	o, ok := n.(*Object)
	return o, ok
}

// Array returns e's array literal (or loop) if e is one.
func (e Expr) Array() (*Array, bool) {
	n, ok := e.Single()
	if !ok {
		return nil, false
	}
	a, ok := n.(*Array)
	return a, ok
}

// Body returns the object a resource or module declaration creates: the last
// object of its value (after any `if (...)`), or a loop's body object.
func (e Expr) Body() (*Object, bool) {
	for i := len(e) - 1; i >= 0; i-- {
		switch n := e[i].(type) {
		case *Object:
			return n, true
		case *Array:
			if n.Loop != nil {
				return n.Body.Body()
			}
		}
	}
	return nil, false
}

// Text renders e roughly as written (tokens joined by spaces), for messages
// and substring checks.
func (e Expr) Text() string {
	var parts []string
	for _, n := range e {
		switch n := n.(type) {
		case *Object:
			var props []string
			for _, p := range n.Props {
				props = append(props, p.Key+": "+p.Value.Text())
			}
			parts = append(parts, enclose("{", strings.Join(props, ", "), "}"))
		case *Array:
			if n.Loop != nil {
				parts = append(parts, "[ "+n.Loop.Text()+" : "+n.Body.Text()+" ]")
				continue
			}
			var items []string
			for _, it := range n.Elems {
				items = append(items, it.Text())
			}
			parts = append(parts, enclose("[", strings.Join(items, ", "), "]"))
		case *Str:
			parts = append(parts, n.Raw)
		case *Number:
			parts = append(parts, n.Text)
		case *Ident:
			parts = append(parts, n.Name)
		case *Group:
			parts = append(parts, enclose("(", n.Inner.Text(), ")"))
		case *Other:
			parts = append(parts, n.Text)
		}
	}
	return strings.Join(parts, " ")
}

// enclose renders a bracketed list: "[ a, b ]", or "[]" when empty.
func enclose(open, inner, close string) string {
	if inner == "" {
		return open + close
	}
	return open + " " + inner + " " + close
}

// Get returns the value of the object's property.
func (o *Object) Get(key string) (Expr, bool) {
	for _, p := range o.Props {
		if p.Key == key {
			return p.Value, true
		}
	}
	return nil, false
}

// Path follows nested object keys, e.g. Path("properties", "routing").
func (o *Object) Path(keys ...string) (Expr, bool) {
	cur := o
	var e Expr
	for i, k := range keys {
		v, ok := cur.Get(k)
		if !ok {
			return nil, false
		}
		e = v
		if i < len(keys)-1 {
			if cur, ok = v.Object(); !ok {
				return nil, false
			}
		}
	}
	return e, true
}

// Resolver looks up a name (a var or param) and returns its value.
type Resolver func(name string) (Expr, bool)

// ObjectEntries gathers the properties of every object e can evaluate to,
// seen through function calls and conditionals (`union(a, c ? {...} : {})`)
// and through identifiers resolve knows. Nested objects (property values) are
// not entered. Each name is resolved once, so cycles end.
func (e Expr) ObjectEntries(resolve Resolver) []Prop {
	var out []Prop
	seen := map[string]bool{}
	var walk func(e Expr)
	walk = func(e Expr) {
		for i, n := range e {
			switch n := n.(type) {
			case *Object:
				out = append(out, n.Props...)
			case *Group:
				walk(n.Inner)
			case *Ident:
				// A name followed by "." is a member access (module.outputs.x), not
				// a var; function names never resolve.
				if i+1 < len(e) {
					if g, ok := e[i+1].(*Other); ok && (g.Text == "." || g.Text == "?.") {
						continue
					}
				}
				if seen[n.Name] {
					continue
				}
				seen[n.Name] = true
				if v, ok := resolve(n.Name); ok {
					walk(v)
				}
			}
		}
	}
	walk(e)
	return out
}

// StringValue returns the string value of e: a literal, or a name whose
// value resolves (through at most 8 names) to a literal.
func (e Expr) StringValue(resolve Resolver) (string, bool) {
	for range 8 {
		if s, ok := e.Literal(); ok {
			return s, true
		}
		name, ok := e.IdentName()
		if !ok {
			return "", false
		}
		if e, ok = resolve(name); !ok {
			return "", false
		}
	}
	return "", false
}
