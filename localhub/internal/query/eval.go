package query

import (
	"encoding/json"
	"math"
	"strings"
)

func (l literal) eval(map[string]any) any { return l.v }

func (e pathExpr) eval(doc map[string]any) any { return e.p.lookup(doc) }

// lookup walks the path; the first segment matches twin fields
// case-insensitively, deeper keys are case-sensitive as in twins.
func (p path) lookup(doc map[string]any) any {
	v, ok := lookupTop(doc, p[0])
	if !ok {
		return undefined{}
	}
	for _, seg := range p[1:] {
		m, isObj := v.(map[string]any)
		if !isObj {
			return undefined{}
		}
		if v, ok = m[seg]; !ok {
			return undefined{}
		}
	}
	return v
}

func lookupTop(doc map[string]any, name string) (any, bool) {
	if v, ok := doc[name]; ok {
		return v, true
	}
	for k, v := range doc {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

func (e binaryExpr) eval(doc map[string]any) any {
	switch e.op {
	case opAnd:
		return evalAnd(e.l, e.r, doc)
	case opOr:
		return evalOr(e.l, e.r, doc)
	case opAdd, opSub, opMul, opDiv, opMod:
		return arithmetic(e.op, e.l.eval(doc), e.r.eval(doc))
	default:
		return compare(e.op, e.l.eval(doc), e.r.eval(doc))
	}
}

// evalAnd is Kleene AND: false wins, then undefined, and any non-Boolean
// operand counts as undefined.
func evalAnd(l, r expr, doc map[string]any) any {
	lv := l.eval(doc)
	if lv == false {
		return false
	}
	rv := r.eval(doc)
	switch {
	case rv == false:
		return false
	case lv == true && rv == true:
		return true
	default:
		return undefined{}
	}
}

// evalOr is Kleene OR: true wins, then undefined.
func evalOr(l, r expr, doc map[string]any) any {
	lv := l.eval(doc)
	if lv == true {
		return true
	}
	rv := r.eval(doc)
	switch {
	case rv == true:
		return true
	case lv == false && rv == false:
		return false
	default:
		return undefined{}
	}
}

func (e notExpr) eval(doc map[string]any) any {
	if b, ok := e.x.eval(doc).(bool); ok {
		return !b
	}
	return undefined{}
}

func (e negExpr) eval(doc map[string]any) any {
	if f, ok := toNumber(e.x.eval(doc)); ok {
		return -f
	}
	return undefined{}
}

func (e isDefinedExpr) eval(doc map[string]any) any {
	_, undef := e.x.eval(doc).(undefined)
	return !undef
}

// eval is undefined unless both operands are strings, as comparisons are.
func (e stringFuncExpr) eval(doc map[string]any) any {
	x, ok := e.x.eval(doc).(string)
	if !ok {
		return undefined{}
	}
	y, ok := e.y.eval(doc).(string)
	if !ok {
		return undefined{}
	}
	if e.suffix {
		return strings.HasSuffix(x, y)
	}
	return strings.HasPrefix(x, y)
}

func (e inExpr) eval(doc map[string]any) any {
	v := e.x.eval(doc)
	if !isPrimitive(v) {
		return undefined{}
	}
	for _, c := range e.list {
		if compare(opEq, v, c) == true {
			return !e.negate
		}
	}
	return e.negate
}

// compare applies a comparison operator. IoT Hub compares primitives only:
// numbers numerically, strings ordinally, Booleans and null for (in)equality.
// Anything else, including different kinds, is undefined.
func compare(op binOp, a, b any) any {
	if !isPrimitive(a) || !isPrimitive(b) {
		return undefined{}
	}
	var c int
	switch x := a.(type) {
	case nil:
		if b != nil {
			return undefined{}
		}
		return equalityOnly(op, true)
	case bool:
		y, ok := b.(bool)
		if !ok {
			return undefined{}
		}
		return equalityOnly(op, x == y)
	case string:
		y, ok := b.(string)
		if !ok {
			return undefined{}
		}
		c = strings.Compare(x, y)
	default:
		fx, okx := toNumber(a)
		fy, oky := toNumber(b)
		if !okx || !oky {
			return undefined{}
		}
		c = cmpFloat(fx, fy)
	}
	switch op {
	case opEq:
		return c == 0
	case opNe:
		return c != 0
	case opLt:
		return c < 0
	case opGt:
		return c > 0
	case opLe:
		return c <= 0
	default: // opGe
		return c >= 0
	}
}

func equalityOnly(op binOp, equal bool) any {
	switch op {
	case opEq:
		return equal
	case opNe:
		return !equal
	default:
		return undefined{}
	}
}

func cmpFloat(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	default:
		return 0
	}
}

func arithmetic(op binOp, a, b any) any {
	x, okx := toNumber(a)
	y, oky := toNumber(b)
	if !okx || !oky {
		return undefined{}
	}
	var r float64
	switch op {
	case opAdd:
		r = x + y
	case opSub:
		r = x - y
	case opMul:
		r = x * y
	case opDiv:
		r = x / y
	default: // opMod
		r = math.Mod(x, y)
	}
	// JSON has no NaN or infinities; division by zero has no value.
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return undefined{}
	}
	return r
}

func isPrimitive(v any) bool {
	switch v.(type) {
	case nil, bool, string:
		return true
	}
	_, ok := toNumber(v)
	return ok
}

// toNumber accepts the number types a caller may put in a twin document:
// float64 from encoding/json, json.Number with UseNumber, or Go integers.
func toNumber(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float32:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}
