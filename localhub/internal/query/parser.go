package query

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// keywords cannot be bare property names; the hub asks for [[group]] instead.
var keywords = [...]string{
	"SELECT", "TOP", "FROM", "WHERE", "GROUP", "BY", "AS", "AND", "OR", "NOT",
	"IN", "NIN", "TRUE", "FALSE", "NULL", "UNDEFINED",
}

func isKeyword(s string) bool {
	for _, k := range keywords {
		if strings.EqualFold(k, s) {
			return true
		}
	}
	return false
}

// routingFunctions exist in the language but IoT Hub evaluates them only in
// message-routing conditions; a twin query that uses one is rejected.
// STARTSWITH and ENDSWITH are the exception: the docs list them for routing
// only, but the hub accepts them in twin queries (MicrosoftDocs/azure-docs
// #110329, #105649), so they are parsed as stringFuncExpr instead.
var routingFunctions = [...]string{
	"ABS", "EXP", "POWER", "SQUARE", "CEILING", "FLOOR", "SIGN", "SQRT",
	"AS_NUMBER", "IS_ARRAY", "IS_BOOL", "IS_NULL", "IS_NUMBER", "IS_OBJECT",
	"IS_PRIMITIVE", "IS_STRING", "CONCAT", "LENGTH", "LOWER", "UPPER",
	"SUBSTRING", "INDEX_OF", "STARTS_WITH",
	"ENDS_WITH", "CONTAINS",
}

const maxTop = math.MaxInt32

type parser struct {
	text string
	toks []token
	i    int
	// projPos holds where each SELECT element starts, for semantic errors.
	projPos []int
	// jobConditions is set while parsing the WHERE of a devices.jobs query,
	// whose conditions may address job properties only.
	jobConditions bool
}

// parse parses text without the length limit, so String output of a long
// query can be read back in tests.
func parse(text string) (*Query, error) {
	toks, err := lex(text)
	if err != nil {
		return nil, err
	}
	p := &parser{text: text, toks: toks}
	return p.parseQuery()
}

func (p *parser) peek() token { return p.toks[p.i] }

// peekAt looks n tokens ahead, stopping at the final EOF.
func (p *parser) peekAt(n int) token { return p.toks[min(p.i+n, len(p.toks)-1)] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) isKeyword(kw string) bool {
	t := p.peek()
	return t.kind == tokIdent && strings.EqualFold(t.text, kw)
}

func (p *parser) acceptKeyword(kw string) bool {
	if p.isKeyword(kw) {
		p.i++
		return true
	}
	return false
}

func (p *parser) expectKeyword(kw string) error {
	if p.acceptKeyword(kw) {
		return nil
	}
	return p.unexpected("expected " + kw)
}

func (p *parser) isPunct(s string) bool {
	t := p.peek()
	return t.kind == tokPunct && t.text == s
}

func (p *parser) acceptPunct(s string) bool {
	if p.isPunct(s) {
		p.i++
		return true
	}
	return false
}

func (p *parser) expectPunct(s string) error {
	if p.acceptPunct(s) {
		return nil
	}
	return p.unexpected("expected '" + s + "'")
}

func (p *parser) errAt(pos int, format string, args ...any) error {
	return newSyntaxError(p.text, pos, fmt.Sprintf(format, args...))
}

func (p *parser) unexpected(want string) error {
	t := p.peek()
	return p.errAt(t.pos, "unexpected %s; %s", t.describe(), want)
}

func (p *parser) parseQuery() (*Query, error) {
	q := &Query{}
	if err := p.expectKeyword("SELECT"); err != nil {
		return nil, err
	}
	if err := p.parseTop(q); err != nil {
		return nil, err
	}
	if err := p.parseSelectList(q); err != nil {
		return nil, err
	}
	fromPos := p.peek().pos
	if err := p.expectKeyword("FROM"); err != nil {
		return nil, err
	}
	if err := p.parseFrom(q); err != nil {
		return nil, err
	}
	if p.acceptKeyword("WHERE") {
		p.jobConditions = q.from == CollectionJobs
		where, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		p.jobConditions = false
		q.where = where
	}
	groupPos := p.peek().pos
	if p.acceptKeyword("GROUP") {
		if err := p.expectKeyword("BY"); err != nil {
			return nil, err
		}
		g, err := p.parsePath()
		if err != nil {
			return nil, err
		}
		q.groupBy = g
	}
	if p.peek().kind != tokEOF {
		return nil, p.unexpected("expected WHERE, GROUP BY or the end of the query")
	}
	if err := p.check(q, fromPos, groupPos); err != nil {
		return nil, err
	}
	return q, nil
}

func (p *parser) parseTop(q *Query) error {
	if !p.acceptKeyword("TOP") {
		return nil
	}
	t := p.next()
	if t.kind != tokNumber || t.num != math.Trunc(t.num) || t.num < 1 || t.num > maxTop {
		return p.errAt(t.pos, "TOP needs a whole number from 1 to %d, got %s", maxTop, t.describe())
	}
	q.top = int(t.num)
	return nil
}

func (p *parser) parseSelectList(q *Query) error {
	if p.acceptPunct("*") {
		q.star = true
		return nil
	}
	unnamed := 0
	for {
		p.projPos = append(p.projPos, p.peek().pos)
		proj, err := p.parseProjection()
		if err != nil {
			return err
		}
		if proj.name == "" {
			// Like Cosmos DB, unnamed aggregates are called $1, $2, ...
			unnamed++
			proj.name = fmt.Sprintf("$%d", unnamed)
		}
		q.proj = append(q.proj, proj)
		if !p.acceptPunct(",") {
			return nil
		}
	}
}

func (p *parser) parseProjection() (projection, error) {
	var proj projection
	t := p.peek()
	if t.kind == tokIdent && p.peekAt(1).kind == tokPunct && p.peekAt(1).text == "(" {
		agg, err := p.parseAggregate()
		if err != nil {
			return projection{}, err
		}
		proj = agg
	} else {
		path, err := p.parsePath()
		if err != nil {
			return projection{}, err
		}
		proj = projection{path: path, name: path[len(path)-1]}
	}
	if p.acceptKeyword("AS") {
		name, err := p.parseName("an alias")
		if err != nil {
			return projection{}, err
		}
		proj.name, proj.alias = name, true
	}
	return proj, nil
}

func (p *parser) parseAggregate() (projection, error) {
	t := p.next()
	p.next() // "("
	agg := aggregateByName(t.text)
	switch {
	case agg == aggNone:
		return projection{}, p.functionNotAllowed(t, "the SELECT list takes property paths and the aggregates COUNT, AVG, SUM, MIN and MAX")
	case agg == aggCount:
		if err := p.expectPunct(")"); err != nil {
			return projection{}, err
		}
		return projection{agg: agg}, nil
	}
	arg, err := p.parsePath()
	if err != nil {
		return projection{}, err
	}
	if err := p.expectPunct(")"); err != nil {
		return projection{}, err
	}
	return projection{agg: agg, path: arg}, nil
}

func aggregateByName(name string) aggFunc {
	for a := aggCount; a <= aggMax; a++ {
		if strings.EqualFold(a.String(), name) {
			return a
		}
	}
	return aggNone
}

// functionNotAllowed explains why a function call cannot appear where it does.
func (p *parser) functionNotAllowed(t token, here string) error {
	name := strings.ToUpper(t.text)
	switch {
	case slices.Contains(routingFunctions[:], name):
		return p.errAt(t.pos, "function %s is supported only in message routing queries; twin queries support only IS_DEFINED", name)
	case name == "IS_DEFINED" || name == "STARTSWITH" || name == "ENDSWITH" || aggregateByName(name) != aggNone:
		return p.errAt(t.pos, "function %s is not allowed here: %s", name, here)
	default:
		return p.errAt(t.pos, "unknown function %s", t.text)
	}
}

func (p *parser) parseFrom(q *Query) error {
	t := p.next()
	if t.kind != tokIdent || !strings.EqualFold(t.text, "devices") {
		return p.errAt(t.pos, "unexpected %s; FROM takes devices, devices.modules or devices.jobs", t.describe())
	}
	q.from = CollectionDevices
	if !p.acceptPunct(".") {
		return nil
	}
	sub := p.next()
	switch {
	case sub.kind == tokIdent && strings.EqualFold(sub.text, "modules"):
		q.from = CollectionModules
	case sub.kind == tokIdent && strings.EqualFold(sub.text, "jobs"):
		q.from = CollectionJobs
	default:
		return p.errAt(sub.pos, "unexpected %s; FROM takes devices, devices.modules or devices.jobs", sub.describe())
	}
	return nil
}

// parseName reads an identifier or a [[bracketed]] name.
func (p *parser) parseName(what string) (string, error) {
	t := p.peek()
	switch {
	case t.kind == tokQuoted:
		p.i++
		return t.text, nil
	case t.kind == tokIdent && isKeyword(t.text):
		return "", p.errAt(t.pos, "%s is a keyword; write [[%s]] to use it as %s", t.text, t.text, what)
	case t.kind == tokIdent:
		p.i++
		return t.text, nil
	}
	return "", p.unexpected("expected " + what)
}

// parsePath reads a.b.[[c]], strips the optional collection prefix
// (devices., devices.modules., devices.jobs.) and canonicalises the twin field.
func (p *parser) parsePath() (path, error) {
	start := p.peek().pos
	var segs path
	var bare []bool
	for {
		bare = append(bare, p.peek().kind == tokIdent)
		seg, err := p.parseName("a property name")
		if err != nil {
			return nil, err
		}
		segs = append(segs, seg)
		if !p.acceptPunct(".") {
			break
		}
	}
	qualifier := ""
	if len(segs) > 1 && bare[0] && strings.EqualFold(segs[0], "devices") {
		segs, bare = segs[1:], bare[1:]
		qualifier = CollectionDevices
		if len(segs) > 1 && bare[0] && (strings.EqualFold(segs[0], "modules") || strings.EqualFold(segs[0], "jobs")) {
			qualifier += "." + strings.ToLower(segs[0])
			segs = segs[1:]
		}
	}
	if p.jobConditions && (qualifier == CollectionDevices || qualifier == CollectionModules || isTwinOnlyField(segs[0])) {
		return nil, p.errAt(start, "queries on devices.jobs can filter on job properties only (devices.jobs.<property>), not on the device twin")
	}
	if p.jobConditions {
		segs[0] = canonicalJobField(segs[0])
	} else {
		segs[0] = canonicalField(segs[0])
	}
	return segs, nil
}
