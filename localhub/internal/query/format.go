package query

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// String formats the query canonically: upper-case keywords, every binary
// operation parenthesised, literals in one spelling. Parsing the result gives
// an equivalent Query.
func (q *Query) String() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	if q.top > 0 {
		b.WriteString("TOP ")
		b.WriteString(strconv.Itoa(q.top))
		b.WriteByte(' ')
	}
	if q.star {
		b.WriteByte('*')
	}
	for i, p := range q.proj {
		if i > 0 {
			b.WriteString(", ")
		}
		p.format(&b)
	}
	b.WriteString(" FROM ")
	b.WriteString(q.from)
	if q.where != nil {
		b.WriteString(" WHERE ")
		q.where.format(&b)
	}
	if q.groupBy != nil {
		b.WriteString(" GROUP BY ")
		q.groupBy.format(&b)
	}
	return b.String()
}

func (p projection) format(b *strings.Builder) {
	if p.agg == aggNone {
		p.path.format(b)
	} else {
		b.WriteString(p.agg.String())
		b.WriteByte('(')
		if p.path != nil {
			p.path.format(b)
		}
		b.WriteByte(')')
	}
	if p.alias {
		b.WriteString(" AS ")
		formatName(b, p.name, false)
	}
}

func (p path) format(b *strings.Builder) {
	for i, seg := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		// A bare leading "devices" would be stripped as the collection prefix.
		formatName(b, seg, i == 0 && strings.EqualFold(seg, CollectionDevices))
	}
}

// formatName writes name bare when it reads back as the same identifier,
// and as [[name]] otherwise.
func formatName(b *strings.Builder, name string, forceEscape bool) {
	if forceEscape || !isPlainIdent(name) || isKeyword(name) {
		b.WriteString("[[")
		b.WriteString(name)
		b.WriteString("]]")
		return
	}
	b.WriteString(name)
}

func isPlainIdent(s string) bool {
	for i, r := range s {
		if r == utf8.RuneError || (i == 0 && !isIdentStart(r)) || !isIdentPart(r) {
			return false
		}
	}
	return s != ""
}

func (l literal) format(b *strings.Builder) { formatValue(b, l.v) }

func formatValue(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case undefined:
		b.WriteString("undefined")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case float64:
		b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
	case string:
		formatString(b, x)
	}
}

// formatString writes a single-quoted literal using only the escapes the
// hub accepts; control characters become \uXXXX, other bytes pass through.
func formatString(b *strings.Builder, s string) {
	const hexDigits = "0123456789abcdef"
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
}

func (e pathExpr) format(b *strings.Builder) { e.p.format(b) }

func (e binaryExpr) format(b *strings.Builder) {
	b.WriteByte('(')
	e.l.format(b)
	b.WriteByte(' ')
	b.WriteString(e.op.String())
	b.WriteByte(' ')
	e.r.format(b)
	b.WriteByte(')')
}

func (e notExpr) format(b *strings.Builder) {
	b.WriteString("(NOT ")
	e.x.format(b)
	b.WriteByte(')')
}

func (e negExpr) format(b *strings.Builder) {
	b.WriteString("(-")
	e.x.format(b)
	b.WriteByte(')')
}

func (e isDefinedExpr) format(b *strings.Builder) {
	b.WriteString("IS_DEFINED(")
	e.x.format(b)
	b.WriteByte(')')
}

func (e stringFuncExpr) format(b *strings.Builder) {
	if e.suffix {
		b.WriteString("ENDSWITH(")
	} else {
		b.WriteString("STARTSWITH(")
	}
	e.x.format(b)
	b.WriteString(", ")
	e.y.format(b)
	b.WriteByte(')')
}

func (e inExpr) format(b *strings.Builder) {
	b.WriteByte('(')
	e.x.format(b)
	if e.negate {
		b.WriteString(" NIN [")
	} else {
		b.WriteString(" IN [")
	}
	for i, v := range e.list {
		if i > 0 {
			b.WriteString(", ")
		}
		formatValue(b, v)
	}
	b.WriteString("])")
}
