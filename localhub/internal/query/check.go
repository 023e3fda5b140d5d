package query

import "strings"

// check enforces the rules the grammar alone does not: what devices.jobs
// allows, how aggregates and GROUP BY combine, and unique result keys.
func (p *parser) check(q *Query, fromPos, groupPos int) error {
	if q.from == CollectionJobs && (!q.star || q.groupBy != nil) {
		return p.errAt(fromPos, "queries on devices.jobs support only SELECT * without GROUP BY")
	}
	if q.groupBy != nil && q.from != CollectionDevices {
		// The docs: GROUP BY "is currently only supported when querying device twins".
		return p.errAt(groupPos, "GROUP BY is supported only in queries on device twins (FROM devices)")
	}
	if q.star && q.groupBy != nil {
		return p.errAt(groupPos, "GROUP BY needs a SELECT list of the grouped property and aggregates, not *")
	}
	hasAgg := false
	for _, proj := range q.proj {
		hasAgg = hasAgg || proj.agg != aggNone
	}
	seen := make(map[string]bool, len(q.proj))
	for i, proj := range q.proj {
		switch {
		case proj.agg != aggNone:
		case q.groupBy != nil && !proj.path.equal(q.groupBy):
			return p.errAt(p.projPos[i], "%s is not in GROUP BY; with GROUP BY select only the grouped property and aggregates", pathText(proj.path))
		case q.groupBy == nil && hasAgg:
			return p.errAt(p.projPos[i], "%s cannot be selected together with an aggregate without GROUP BY", pathText(proj.path))
		}
		if seen[proj.name] {
			return p.errAt(p.projPos[i], "the result property %q is selected more than once; use AS to rename it", proj.name)
		}
		seen[proj.name] = true
	}
	return nil
}

func pathText(pt path) string {
	var b strings.Builder
	pt.format(&b)
	return b.String()
}
