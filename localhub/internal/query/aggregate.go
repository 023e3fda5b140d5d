package query

import "strings"

// accumulator folds one aggregate over the documents of a group. It follows
// Cosmos DB: undefined values are skipped; SUM and AVG over a non-number, or
// MIN and MAX over an object or array, make the result undefined (the key is
// then left out of the item).
type accumulator struct {
	n       int // documents for COUNT, numbers for SUM and AVG
	sum     float64
	best    any // running MIN or MAX, valid when hasBest
	hasBest bool
	invalid bool
}

func (a *accumulator) add(p projection, doc map[string]any) {
	if p.agg == aggCount {
		a.n++
		return
	}
	v := p.path.lookup(doc)
	if isUndefined(v) || a.invalid {
		return
	}
	switch p.agg {
	case aggSum, aggAvg:
		f, ok := toNumber(v)
		if !ok {
			a.invalid = true
			return
		}
		a.sum += f
		a.n++
	default: // aggMin, aggMax
		if !isPrimitive(v) {
			a.invalid = true
			return
		}
		c := orderValues(v, a.best)
		if !a.hasBest || (p.agg == aggMin && c < 0) || (p.agg == aggMax && c > 0) {
			a.best, a.hasBest = v, true
		}
	}
}

func (a *accumulator) result(agg aggFunc) any {
	if a.invalid {
		return undefined{}
	}
	switch agg {
	case aggCount:
		return float64(a.n)
	case aggSum:
		return a.sum
	case aggAvg:
		if a.n == 0 {
			return undefined{}
		}
		return a.sum / float64(a.n)
	default:
		if !a.hasBest {
			return undefined{}
		}
		if f, ok := toNumber(a.best); ok {
			return f
		}
		return a.best
	}
}

// orderValues orders primitives across kinds as Cosmos DB does for MIN and
// MAX: null < false < true < numbers < strings.
func orderValues(x, y any) int {
	rx, ry := kindRank(x), kindRank(y)
	if rx != ry {
		return rx - ry
	}
	switch xv := x.(type) {
	case nil, bool: // equal ranks mean equal values
		return 0
	case string:
		return strings.Compare(xv, y.(string))
	}
	fx, _ := toNumber(x)
	fy, _ := toNumber(y)
	return cmpFloat(fx, fy)
}

func kindRank(v any) int {
	switch b := v.(type) {
	case nil:
		return 0
	case bool:
		if b {
			return 2
		}
		return 1
	case string:
		return 4
	}
	return 3
}
