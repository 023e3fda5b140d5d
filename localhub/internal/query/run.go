package query

import (
	"encoding/json"
	"fmt"
)

// Run evaluates the query over its collection's documents (for devices,
// each the JSON object of a twin as GET /twins/{id} returns it; for
// devices.jobs, each a device's part in a job as the service API returns
// it) and returns the result items in order.
// Documents are visited in the order given; grouped results come out in the
// order each group is first seen. Run does not modify docs; SELECT * items
// are the given documents themselves.
func (q *Query) Run(docs []map[string]any) (Result, error) {
	if q.from == CollectionModules {
		return Result{}, fmt.Errorf("query FROM %s: %w", q.from, ErrUnsupportedCollection)
	}
	res := Result{Items: []any{}, ItemType: q.ItemType()}
	if q.isAggregate() {
		res.Items = q.runGrouped(docs)
		return res, nil
	}
	for _, doc := range docs {
		if q.top > 0 && len(res.Items) == q.top {
			break
		}
		if !q.matches(doc) {
			continue
		}
		if q.star {
			res.Items = append(res.Items, doc)
			continue
		}
		res.Items = append(res.Items, q.project(doc))
	}
	return res, nil
}

// isAggregate reports whether the query produces one item per group (a
// single group for all documents when there is no GROUP BY).
func (q *Query) isAggregate() bool {
	if q.groupBy != nil {
		return true
	}
	for _, p := range q.proj {
		if p.agg != aggNone {
			return true
		}
	}
	return false
}

func (q *Query) matches(doc map[string]any) bool {
	return q.where == nil || q.where.eval(doc) == true
}

// project builds the item for one document; undefined values are left out.
func (q *Query) project(doc map[string]any) map[string]any {
	item := make(map[string]any, len(q.proj))
	for _, p := range q.proj {
		if v := p.path.lookup(doc); !isUndefined(v) {
			item[p.name] = v
		}
	}
	return item
}

func isUndefined(v any) bool {
	_, ok := v.(undefined)
	return ok
}

type group struct {
	value any // the GROUP BY value, possibly undefined
	accs  []accumulator
}

func (q *Query) runGrouped(docs []map[string]any) []any {
	var groups []*group
	index := map[groupKey]*group{}
	newGroup := func(v any) *group {
		g := &group{value: v, accs: make([]accumulator, len(q.proj))}
		groups = append(groups, g)
		return g
	}
	if q.groupBy == nil {
		// Without GROUP BY an aggregate always yields one item, even over no documents.
		newGroup(undefined{})
	}
	for _, doc := range docs {
		if !q.matches(doc) {
			continue
		}
		var target *group
		if q.groupBy == nil {
			target = groups[0]
		} else {
			v := q.groupBy.lookup(doc)
			k := keyOf(v)
			if target = index[k]; target == nil {
				target = newGroup(v)
				index[k] = target
			}
		}
		for i, p := range q.proj {
			if p.agg != aggNone {
				target.accs[i].add(p, doc)
			}
		}
	}
	items := make([]any, 0, len(groups))
	for _, g := range groups {
		if q.top > 0 && len(items) == q.top {
			break
		}
		items = append(items, q.groupItem(g))
	}
	return items
}

func (q *Query) groupItem(g *group) map[string]any {
	item := make(map[string]any, len(q.proj))
	for i, p := range q.proj {
		v := g.value
		if p.agg != aggNone {
			v = g.accs[i].result(p.agg)
		}
		if !isUndefined(v) {
			item[p.name] = v
		}
	}
	return item
}

// groupKey makes any JSON value usable as a map key.
type groupKey struct {
	kind byte // u undefined, n null, b bool, f number, s string, j object or array
	s    string
	f    float64
	b    bool
}

func keyOf(v any) groupKey {
	switch x := v.(type) {
	case undefined:
		return groupKey{kind: 'u'}
	case nil:
		return groupKey{kind: 'n'}
	case bool:
		return groupKey{kind: 'b', b: x}
	case string:
		return groupKey{kind: 's', s: x}
	}
	if f, ok := toNumber(v); ok {
		return groupKey{kind: 'f', f: f}
	}
	// encoding/json sorts map keys, so equal objects encode equally.
	raw, err := json.Marshal(v)
	if err != nil {
		return groupKey{kind: 'j', s: fmt.Sprint(v)}
	}
	return groupKey{kind: 'j', s: string(raw)}
}
