package query

import "strings"

// Precedence, loosest first: OR, AND, NOT, comparison and IN/NIN, + -, * / %, unary -.

func (p *parser) parseExpr() (expr, error) { return p.parseOr() }

func (p *parser) parseOr() (expr, error) {
	l, err := p.parseAnd()
	for err == nil && p.acceptKeyword("OR") {
		var r expr
		if r, err = p.parseAnd(); err == nil {
			l = binaryExpr{op: opOr, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) parseAnd() (expr, error) {
	l, err := p.parseNot()
	for err == nil && p.acceptKeyword("AND") {
		var r expr
		if r, err = p.parseNot(); err == nil {
			l = binaryExpr{op: opAnd, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) parseNot() (expr, error) {
	if !p.acceptKeyword("NOT") {
		return p.parseComparison()
	}
	x, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	return notExpr{x: x}, nil
}

var comparisonOps = map[string]binOp{
	"=": opEq, "!=": opNe, "<>": opNe, "<": opLt, ">": opGt, "<=": opLe, ">=": opGe,
}

var arithmeticOps = map[string]binOp{"+": opAdd, "-": opSub, "*": opMul, "/": opDiv, "%": opMod}

func (p *parser) parseComparison() (expr, error) {
	l, err := p.parseAdditive()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	if op, ok := comparisonOps[t.text]; ok && t.kind == tokPunct {
		p.i++
		r, err := p.parseAdditive()
		if err != nil {
			return nil, err
		}
		return binaryExpr{op: op, l: l, r: r}, nil
	}
	if p.isKeyword("IN") || p.isKeyword("NIN") {
		negate := p.isKeyword("NIN")
		p.i++
		list, err := p.parseArray()
		if err != nil {
			return nil, err
		}
		return inExpr{x: l, list: list, negate: negate}, nil
	}
	return l, nil
}

func (p *parser) parseAdditive() (expr, error) {
	l, err := p.parseMultiplicative()
	for err == nil && (p.isPunct("+") || p.isPunct("-")) {
		op := arithmeticOps[p.next().text]
		var r expr
		if r, err = p.parseMultiplicative(); err == nil {
			l = binaryExpr{op: op, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) parseMultiplicative() (expr, error) {
	l, err := p.parseUnary()
	for err == nil && (p.isPunct("*") || p.isPunct("/") || p.isPunct("%")) {
		op := arithmeticOps[p.next().text]
		var r expr
		if r, err = p.parseUnary(); err == nil {
			l = binaryExpr{op: op, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) parseUnary() (expr, error) {
	if !p.acceptPunct("-") {
		return p.parsePrimary()
	}
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	// Fold -5 into a literal so negative constants have one representation.
	if lit, ok := x.(literal); ok {
		if f, ok := lit.v.(float64); ok {
			return literal{v: -f}, nil
		}
	}
	return negExpr{x: x}, nil
}

func (p *parser) parsePrimary() (expr, error) {
	t := p.peek()
	switch {
	case t.kind == tokNumber:
		p.i++
		return literal{v: t.num}, nil
	case t.kind == tokString:
		p.i++
		return literal{v: t.text}, nil
	case t.kind == tokPunct && t.text == "(":
		p.i++
		x, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		return x, nil
	case t.kind == tokPunct && t.text == "[":
		return nil, p.errAt(t.pos, "array constants are allowed only after IN or NIN")
	case t.kind == tokIdent && p.peekAt(1).kind == tokPunct && p.peekAt(1).text == "(":
		return p.parseFunction()
	}
	if v, ok := keywordConstant(t); ok {
		p.i++
		return literal{v: v}, nil
	}
	if t.kind == tokIdent || t.kind == tokQuoted {
		path, err := p.parsePath()
		if err != nil {
			return nil, err
		}
		return pathExpr{p: path}, nil
	}
	return nil, p.unexpected("expected an expression")
}

func keywordConstant(t token) (any, bool) {
	if t.kind != tokIdent {
		return nil, false
	}
	switch strings.ToUpper(t.text) {
	case "TRUE":
		return true, true
	case "FALSE":
		return false, true
	case "NULL":
		return nil, true
	case "UNDEFINED":
		return undefined{}, true
	}
	return nil, false
}

// parseFunction handles the functions twin queries allow: IS_DEFINED,
// STARTSWITH and ENDSWITH.
func (p *parser) parseFunction() (expr, error) {
	t := p.peek()
	name := strings.ToUpper(t.text)
	if name == "STARTSWITH" || name == "ENDSWITH" {
		return p.parseStringFunction(name)
	}
	if name != "IS_DEFINED" {
		return nil, p.functionNotAllowed(t, "aggregates are allowed only in the SELECT list")
	}
	p.i += 2 // name and "("
	x, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if err := p.expectPunct(")"); err != nil {
		return nil, err
	}
	return isDefinedExpr{x: x}, nil
}

// parseStringFunction reads STARTSWITH(x, y) or ENDSWITH(x, y).
func (p *parser) parseStringFunction(name string) (expr, error) {
	p.i += 2 // name and "("
	x, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if err := p.expectPunct(","); err != nil {
		return nil, err
	}
	y, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if err := p.expectPunct(")"); err != nil {
		return nil, err
	}
	return stringFuncExpr{suffix: name == "ENDSWITH", x: x, y: y}, nil
}

// parseArray reads [c, ...] where every element is a constant.
func (p *parser) parseArray() ([]any, error) {
	if err := p.expectPunct("["); err != nil {
		return nil, err
	}
	list := []any{}
	if p.acceptPunct("]") {
		return list, nil
	}
	for {
		v, err := p.parseConstant()
		if err != nil {
			return nil, err
		}
		list = append(list, v)
		if p.acceptPunct("]") {
			return list, nil
		}
		if err := p.expectPunct(","); err != nil {
			return nil, err
		}
	}
}

func (p *parser) parseConstant() (any, error) {
	t := p.next()
	switch {
	case t.kind == tokNumber:
		return t.num, nil
	case t.kind == tokString:
		return t.text, nil
	case t.kind == tokPunct && t.text == "-" && p.peek().kind == tokNumber:
		return -p.next().num, nil
	}
	if v, ok := keywordConstant(t); ok {
		return v, nil
	}
	return nil, p.errAt(t.pos, "unexpected %s; array elements must be constants", t.describe())
}
