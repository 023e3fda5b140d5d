package bicep

import (
	"fmt"
	"strings"
)

// maxDepth bounds how deeply objects, arrays and parentheses may nest, so a
// hostile input cannot recurse without limit. Real templates nest a handful
// of levels.
const maxDepth = 100

// File is a parsed .bicep or .bicepparam file.
type File struct {
	Decls []Decl
}

// Find returns the declaration with the keyword and symbolic name.
func (f *File) Find(keyword, name string) (Decl, bool) {
	for _, d := range f.Decls {
		if d.Keyword == keyword && d.Name == name {
			return d, true
		}
	}
	return Decl{}, false
}

// All returns the declarations with the keyword, in source order.
func (f *File) All(keyword string) []Decl {
	var out []Decl
	for _, d := range f.Decls {
		if d.Keyword == keyword {
			out = append(out, d)
		}
	}
	return out
}

// Decl is a top-level declaration.
type Decl struct {
	// Keyword is param, var, resource, module, output, type, metadata,
	// targetScope, using, import, func or extension; "resource existing" for
	// a reference to an existing resource.
	Keyword string
	Name    string // symbolic name
	// Type is the declared type of a param, var or output; the
	// "type@version" of a resource; the path of a module.
	Type       string
	Decorators []Decorator
	Value      Expr // nil for a param without default
	Line       int
}

// Decorator is one @name(args) line above a declaration. Name is the last
// part of a qualified name (sys.description gives description).
type Decorator struct {
	Name string
	Args []Expr
}

// Decorator returns the declaration's decorator with the name.
func (d Decl) Decorator(name string) (Decorator, bool) {
	for _, dec := range d.Decorators {
		if dec.Name == name {
			return dec, true
		}
	}
	return Decorator{}, false
}

// HasDecorator reports whether the declaration has the decorator.
func (d Decl) HasDecorator(name string) bool {
	_, ok := d.Decorator(name)
	return ok
}

// String renders the declaration for test failure messages.
func (d Decl) String() string {
	return fmt.Sprintf("%s %s %q = %s", d.Keyword, d.Name, d.Type, d.Value.Text())
}

// Parse reads the declarations of a .bicep or .bicepparam file.
func Parse(src string) (*File, error) {
	all, err := Lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{}
	for _, t := range all {
		if t.Kind != TokenTrivia {
			p.toks = append(p.toks, t)
		}
	}
	f := &File{}
	var decorators []Decorator
	for {
		p.skipNewlines()
		t, ok := p.peek()
		if !ok {
			if len(decorators) > 0 {
				return nil, fmt.Errorf("line %d: decorator @%s before the end of the file", p.lastLine(), decorators[0].Name)
			}
			return f, nil
		}
		if t.Text == "@" {
			dec, err := p.parseDecorator()
			if err != nil {
				return nil, err
			}
			decorators = append(decorators, dec)
			continue
		}
		d, err := p.parseDecl()
		if err != nil {
			return nil, err
		}
		d.Decorators = decorators
		decorators = nil
		f.Decls = append(f.Decls, d)
	}
}

type parser struct {
	toks  []Token // trivia removed
	pos   int
	depth int
}

func (p *parser) parseDecorator() (Decorator, error) {
	p.next() // @
	name, err := p.expect(TokenIdent)
	if err != nil {
		return Decorator{}, err
	}
	for t, ok := p.peek(); ok && t.Text == "."; t, ok = p.peek() {
		p.next()
		if name, err = p.expect(TokenIdent); err != nil { // sys.description: keep the last name
			return Decorator{}, err
		}
	}
	dec := Decorator{Name: name.Text}
	if t, ok := p.peek(); ok && t.Text == "(" {
		n, err := p.parseNode()
		if err != nil {
			return Decorator{}, err
		}
		dec.Args = splitArgs(n.(*Group).Inner)
	}
	return dec, nil
}

// splitArgs splits a call's argument list at its top-level commas.
func splitArgs(e Expr) []Expr {
	var args []Expr
	var cur Expr
	for _, n := range e {
		if o, ok := n.(*Other); ok && o.Text == "," {
			args = append(args, cur)
			cur = nil
			continue
		}
		cur = append(cur, n)
	}
	if len(cur) > 0 {
		args = append(args, cur)
	}
	return args
}

func (p *parser) parseDecl() (Decl, error) {
	kw, err := p.expect(TokenIdent)
	if err != nil {
		return Decl{}, err
	}
	d := Decl{Keyword: kw.Text, Line: kw.Line}
	switch kw.Text {
	case "param", "var", "output", "type", "metadata":
		name, err := p.expect(TokenIdent)
		if err != nil {
			return Decl{}, err
		}
		d.Name = name.Text
		// The type runs up to "=" (or the end of the line for a param with no default).
		var typ []string
		for t, ok := p.peek(); ok && t.Text != "=" && t.Kind != TokenNewline; t, ok = p.peek() {
			typ = append(typ, p.next().Text)
		}
		d.Type = strings.Join(typ, "")
	case "resource", "module":
		name, err := p.expect(TokenIdent)
		if err != nil {
			return Decl{}, err
		}
		typ, err := p.expect(TokenString)
		if err != nil {
			return Decl{}, err
		}
		d.Name, d.Type = name.Text, unquote(typ.Text)
		if t, ok := p.peek(); ok && t.Text == "existing" {
			p.next()
			d.Keyword += " existing"
		}
	case "targetScope":
	case "using", "import", "func", "extension":
		// Not needed by the checks: keep the rest of the line as the value.
		d.Value, err = p.parseExpr(stopAtNewline)
		return d, err
	default:
		return Decl{}, fmt.Errorf("line %d: unexpected %q at top level", kw.Line, kw.Text)
	}
	if t, ok := p.peek(); !ok || t.Text != "=" {
		if d.Keyword == "param" {
			return d, nil
		}
		return Decl{}, fmt.Errorf("line %d: %s %s: expected =", kw.Line, d.Keyword, d.Name)
	}
	p.next()
	d.Value, err = p.parseExpr(stopAtNewline)
	return d, err
}

type stopFunc func(Token) bool

func stopAtNewline(t Token) bool { return t.Kind == TokenNewline }

func stopInObject(t Token) bool { return t.Kind == TokenNewline || t.Text == "," || t.Text == "}" }

func stopInArray(t Token) bool { return t.Kind == TokenNewline || t.Text == "," || t.Text == "]" }

func stopInGroup(t Token) bool { return t.Text == ")" }

// parseExpr reads nodes up to (not including) a stop token or the end.
func (p *parser) parseExpr(stop stopFunc) (Expr, error) {
	var e Expr
	for {
		t, ok := p.peek()
		if !ok || stop(t) {
			return e, nil
		}
		if t.Kind == TokenNewline { // only reachable inside groups and loop bodies
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

func (p *parser) parseNode() (Node, error) {
	t := p.next()
	switch {
	case t.Text == "{" || t.Text == "[" || t.Text == "(":
		if p.depth >= maxDepth {
			return nil, fmt.Errorf("line %d: nested more than %d levels deep", t.Line, maxDepth)
		}
		p.depth++
		defer func() { p.depth-- }()
		switch t.Text {
		case "{":
			return p.parseObject(t)
		case "[":
			return p.parseArray(t)
		}
		inner, err := p.parseExpr(stopInGroup)
		if err != nil {
			return nil, err
		}
		if _, err := p.expectText(")", t); err != nil {
			return nil, err
		}
		return &Group{Inner: inner}, nil
	case t.Text == "}" || t.Text == "]" || t.Text == ")":
		return nil, fmt.Errorf("line %d: unbalanced %q", t.Line, t.Text)
	case t.Kind == TokenString:
		return newStr(t.Text), nil
	case t.Kind == TokenNumber:
		return &Number{Text: t.Text}, nil
	case t.Kind == TokenIdent:
		return &Ident{Name: t.Text}, nil
	}
	return &Other{Text: t.Text}, nil
}

func (p *parser) parseObject(open Token) (Node, error) {
	o := &Object{}
	for {
		p.skipSeparators()
		t, ok := p.peek()
		if !ok {
			return nil, fmt.Errorf("line %d: unterminated object", open.Line)
		}
		if t.Text == "}" {
			p.next()
			return o, nil
		}
		key := p.next()
		switch key.Kind {
		case TokenIdent:
		case TokenString:
			key.Text = unquote(key.Text)
		default:
			return nil, fmt.Errorf("line %d: object key %q", key.Line, key.Text)
		}
		if _, err := p.expectText(":", key); err != nil {
			return nil, err
		}
		value, err := p.parseExpr(stopInObject)
		if err != nil {
			return nil, err
		}
		o.Props = append(o.Props, Prop{Key: key.Text, Value: value})
	}
}

func (p *parser) parseArray(open Token) (Node, error) {
	a := &Array{}
	p.skipSeparators()
	if t, ok := p.peek(); ok && t.Text == "for" {
		header, err := p.parseExpr(func(t Token) bool { return t.Text == ":" })
		if err != nil {
			return nil, err
		}
		if _, err := p.expectText(":", open); err != nil {
			return nil, err
		}
		a.Loop = header
		if a.Body, err = p.parseExpr(func(t Token) bool { return t.Text == "]" }); err != nil {
			return nil, err
		}
		_, err = p.expectText("]", open)
		return a, err
	}
	for {
		p.skipSeparators()
		t, ok := p.peek()
		if !ok {
			return nil, fmt.Errorf("line %d: unterminated array", open.Line)
		}
		if t.Text == "]" {
			p.next()
			return a, nil
		}
		item, err := p.parseExpr(stopInArray)
		if err != nil {
			return nil, err
		}
		a.Elems = append(a.Elems, item)
	}
}

func (p *parser) skipNewlines() {
	for t, ok := p.peek(); ok && t.Kind == TokenNewline; t, ok = p.peek() {
		p.next()
	}
}

func (p *parser) skipSeparators() {
	for t, ok := p.peek(); ok && (t.Kind == TokenNewline || t.Text == ","); t, ok = p.peek() {
		p.next()
	}
}

func (p *parser) peek() (Token, bool) {
	if p.pos >= len(p.toks) {
		return Token{}, false
	}
	return p.toks[p.pos], true
}

// next returns the next token; callers have peeked, so there is one.
func (p *parser) next() Token {
	t := p.toks[p.pos]
	p.pos++
	return t
}

func (p *parser) lastLine() int {
	if len(p.toks) == 0 {
		return 1
	}
	return p.toks[len(p.toks)-1].Line
}

func (p *parser) expect(kind TokenKind) (Token, error) {
	t, ok := p.peek()
	if !ok {
		return Token{}, fmt.Errorf("line %d: unexpected end of file", p.lastLine())
	}
	if t.Kind != kind {
		return Token{}, fmt.Errorf("line %d: unexpected %q", t.Line, t.Text)
	}
	return p.next(), nil
}

func (p *parser) expectText(text string, from Token) (Token, error) {
	t, ok := p.peek()
	if !ok {
		return Token{}, fmt.Errorf("line %d: missing %q", from.Line, text)
	}
	if t.Text != text {
		return Token{}, fmt.Errorf("line %d: want %q, got %q", t.Line, text, t.Text)
	}
	return p.next(), nil
}
