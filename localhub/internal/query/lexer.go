package query

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

type tokKind uint8

const (
	tokEOF    tokKind = iota
	tokIdent          // bare identifier; keywords are identifiers matched case-insensitively
	tokQuoted         // [[name]]: an identifier that is never a keyword
	tokNumber         // decimal or 0x hex literal
	tokString         // quoted string literal, already unescaped
	tokPunct          // operator or punctuation
)

type token struct {
	kind tokKind
	text string // identifier name, punctuation, or decoded string literal
	num  float64
	pos  int
}

// describe names a token the way an error message should show it.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of query"
	case tokQuoted:
		return "'[[" + t.text + "]]'"
	case tokNumber:
		return "number " + strconv.FormatFloat(t.num, 'g', -1, 64)
	case tokString:
		return "string literal"
	default:
		return "'" + t.text + "'"
	}
}

// twoCharPuncts are checked before single characters so "<=" is not read as "<", "=".
var twoCharPuncts = [...]string{"<=", ">=", "<>", "!="}

const singleCharPuncts = "=<>+-*/%()[],."

// lex splits text into tokens, ending with a tokEOF.
func lex(text string) ([]token, error) {
	var toks []token
	for i := 0; ; {
		for i < len(text) && isSpace(text[i]) {
			i++
		}
		if i == len(text) {
			return append(toks, token{kind: tokEOF, pos: i}), nil
		}
		tok, end, err := lexOne(text, i)
		if err != nil {
			return nil, err
		}
		toks = append(toks, tok)
		i = end
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func lexOne(text string, i int) (token, int, error) {
	c := text[i]
	switch {
	case strings.HasPrefix(text[i:], "[["):
		return lexQuotedIdent(text, i)
	case c == '\'' || c == '"':
		return lexString(text, i)
	case c >= '0' && c <= '9':
		return lexNumber(text, i)
	}
	for _, p := range twoCharPuncts {
		if strings.HasPrefix(text[i:], p) {
			return token{kind: tokPunct, text: p, pos: i}, i + len(p), nil
		}
	}
	if strings.IndexByte(singleCharPuncts, c) >= 0 {
		return token{kind: tokPunct, text: text[i : i+1], pos: i}, i + 1, nil
	}
	if r, _ := utf8.DecodeRuneInString(text[i:]); isIdentStart(r) {
		end := identEnd(text, i)
		return token{kind: tokIdent, text: text[i:end], pos: i}, end, nil
	}
	r, _ := utf8.DecodeRuneInString(text[i:])
	return token{}, 0, newSyntaxError(text, i, fmt.Sprintf("unexpected character %q", r))
}

func isIdentStart(r rune) bool { return r == '_' || r == '$' || unicode.IsLetter(r) }

func isIdentPart(r rune) bool { return isIdentStart(r) || unicode.IsDigit(r) }

func identEnd(text string, i int) int {
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		if !isIdentPart(r) {
			break
		}
		i += size
	}
	return i
}

// lexQuotedIdent reads [[name]], the hub's escape for property names that are
// keywords (group) or are not plain identifiers.
func lexQuotedIdent(text string, i int) (token, int, error) {
	n := strings.Index(text[i+2:], "]]")
	if n < 0 {
		return token{}, 0, newSyntaxError(text, i, "unterminated '[[': a bracketed name must end with ']]'")
	}
	if n == 0 {
		return token{}, 0, newSyntaxError(text, i, "empty bracketed name '[[]]'")
	}
	return token{kind: tokQuoted, text: text[i+2 : i+2+n], pos: i}, i + 2 + n + 2, nil
}

func lexString(text string, start int) (token, int, error) {
	quote := text[start]
	var b strings.Builder
	for i := start + 1; i < len(text); {
		c := text[i]
		switch {
		case c == quote:
			return token{kind: tokString, text: b.String(), pos: start}, i + 1, nil
		case c != '\\':
			b.WriteByte(c)
			i++
			continue
		}
		r, next, err := lexEscape(text, i)
		if err != nil {
			return token{}, 0, err
		}
		b.WriteRune(r)
		i = next
	}
	return token{}, 0, newSyntaxError(text, start, "unterminated string literal")
}

// lexEscape decodes the escape at text[i] == '\\'. Only the escapes the hub
// documents are accepted: \' \" \\ and \uXXXX (a surrogate pair makes one rune).
func lexEscape(text string, i int) (rune, int, error) {
	if i+1 >= len(text) {
		return 0, 0, newSyntaxError(text, i, "unterminated string literal")
	}
	switch text[i+1] {
	case '\'', '"', '\\':
		return rune(text[i+1]), i + 2, nil
	case 'u':
	default:
		return 0, 0, newSyntaxError(text, i, fmt.Sprintf(`invalid escape sequence '\%c' in string literal; allowed escapes are \' \" \\ \uXXXX`, text[i+1]))
	}
	r, ok := hex4(text, i+2)
	if !ok {
		return 0, 0, newSyntaxError(text, i, `invalid \u escape: expected 4 hexadecimal digits`)
	}
	next := i + 6
	if utf16.IsSurrogate(r) && strings.HasPrefix(text[next:], `\u`) {
		if lo, ok := hex4(text, next+2); ok {
			if pair := utf16.DecodeRune(r, lo); pair != unicode.ReplacementChar {
				return pair, next + 6, nil
			}
		}
	}
	if utf16.IsSurrogate(r) {
		r = unicode.ReplacementChar
	}
	return r, next, nil
}

func hex4(text string, i int) (rune, bool) {
	if i+4 > len(text) {
		return 0, false
	}
	v, err := strconv.ParseUint(text[i:i+4], 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(v), true
}

func lexNumber(text string, start int) (token, int, error) {
	end, hex := scanNumber(text, start)
	if end < len(text) {
		if r, _ := utf8.DecodeRuneInString(text[end:]); isIdentPart(r) {
			return token{}, 0, newSyntaxError(text, start, fmt.Sprintf("invalid number %q", text[start:identEnd(text, end)]))
		}
	}
	lit := text[start:end]
	var v float64
	if hex {
		u, err := strconv.ParseUint(lit[2:], 16, 64)
		if err != nil || len(lit) == 2 {
			return token{}, 0, newSyntaxError(text, start, fmt.Sprintf("invalid hexadecimal number %q", lit))
		}
		v = float64(u)
	} else {
		// scanNumber only accepts valid syntax, so the only possible error is
		// ErrRange; underflow to zero is harmless, overflow to infinity is not.
		f, _ := strconv.ParseFloat(lit, 64)
		if math.IsInf(f, 0) {
			return token{}, 0, newSyntaxError(text, start, fmt.Sprintf("number %s is out of range", lit))
		}
		v = f
	}
	return token{kind: tokNumber, text: lit, num: v, pos: start}, end, nil
}

// scanNumber finds the end of 123, 1.5, 2e-3 or 0x1F starting at text[start].
func scanNumber(text string, start int) (end int, hex bool) {
	i := start
	if strings.HasPrefix(text[i:], "0x") || strings.HasPrefix(text[i:], "0X") {
		i += 2
		for i < len(text) && isHexDigit(text[i]) {
			i++
		}
		return i, true
	}
	i = digitsEnd(text, i)
	if i+1 < len(text) && text[i] == '.' && isDigit(text[i+1]) {
		i = digitsEnd(text, i+1)
	}
	if i < len(text) && (text[i] == 'e' || text[i] == 'E') {
		j := i + 1
		if j < len(text) && (text[j] == '+' || text[j] == '-') {
			j++
		}
		if j < len(text) && isDigit(text[j]) {
			i = digitsEnd(text, j)
		}
	}
	return i, false
}

func digitsEnd(text string, i int) int {
	for i < len(text) && isDigit(text[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool    { return c >= '0' && c <= '9' }
func isHexDigit(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }
