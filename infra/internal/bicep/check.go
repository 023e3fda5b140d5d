package bicep

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrNotConstant is returned by [Decl.CheckValue] when a constraint applies
// but the value is not a literal, so only a deployment could tell.
var ErrNotConstant = errors.New("value is not a literal")

// CheckValue reports whether v, a value for the param d, satisfies d's
// @allowed, @minValue, @maxValue, @minLength and @maxLength decorators, as
// Bicep checks a literal at build time and Azure Resource Manager at
// deployment. A param with none of them accepts anything.
func (d Decl) CheckValue(v Expr) error {
	for _, dec := range d.Decorators {
		var err error
		switch dec.Name {
		case "allowed":
			err = checkAllowed(dec, v)
		case "minValue", "maxValue", "minLength", "maxLength":
			err = checkBound(dec, v)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("param %s: %w", d.Name, err)
		}
	}
	return nil
}

func checkAllowed(dec Decorator, v Expr) error {
	if len(dec.Args) != 1 {
		return fmt.Errorf("@allowed takes one array, got %d arguments", len(dec.Args))
	}
	list, ok := dec.Args[0].Array()
	if !ok || list.Loop != nil {
		return fmt.Errorf("@allowed takes an array literal, got %s", dec.Args[0].Text())
	}
	if !isConstant(v) {
		return ErrNotConstant
	}
	for _, item := range list.Elems {
		if equalConstants(item, v) {
			return nil
		}
	}
	return fmt.Errorf("%s is not one of %s", v.Text(), dec.Args[0].Text())
}

// checkBound checks a @minValue, @maxValue, @minLength or @maxLength
// decorator against v.
func checkBound(dec Decorator, v Expr) error {
	if len(dec.Args) != 1 {
		return fmt.Errorf("@%s takes one integer, got %d arguments", dec.Name, len(dec.Args))
	}
	bound, ok := dec.Args[0].Int()
	if !ok {
		return fmt.Errorf("@%s takes an integer literal, got %s", dec.Name, dec.Args[0].Text())
	}
	what, got := "value", int64(0)
	if dec.Name == "minLength" || dec.Name == "maxLength" {
		what = "length"
		got, ok = lengthOf(v)
	} else {
		got, ok = v.Int()
	}
	if !ok {
		return ErrNotConstant
	}
	switch dec.Name {
	case "minValue", "minLength":
		if got < bound {
			return fmt.Errorf("%s %d is below @%s(%d)", what, got, dec.Name, bound)
		}
	default:
		if got > bound {
			return fmt.Errorf("%s %d is above @%s(%d)", what, got, dec.Name, bound)
		}
	}
	return nil
}

// lengthOf is the length of a string literal (in characters) or of an array
// literal (in items).
func lengthOf(v Expr) (int64, bool) {
	if s, ok := v.Literal(); ok {
		return int64(utf8.RuneCountInString(s)), true
	}
	if a, ok := v.Array(); ok && a.Loop == nil {
		return int64(len(a.Elems)), true
	}
	return 0, false
}

func isConstant(v Expr) bool {
	if _, ok := v.Literal(); ok {
		return true
	}
	if _, ok := v.Int(); ok {
		return true
	}
	name, ok := v.IdentName()
	return ok && (name == "true" || name == "false")
}

func equalConstants(a, b Expr) bool {
	if x, ok := a.Literal(); ok {
		y, ok := b.Literal()
		return ok && x == y
	}
	if x, ok := a.Int(); ok {
		y, ok := b.Int()
		return ok && x == y
	}
	x, okA := a.IdentName()
	y, okB := b.IdentName()
	return okA && okB && x == y
}
