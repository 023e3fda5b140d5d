// Package jsonscan reads just the parts of a JSON document the caller asks
// for, in one pass and without reflection: iterate an object's members or
// an array's elements as raw subslices, and decode string and integer
// values. It exists for TwinChangeProcessor's throughput: the host's
// double-encoded Event Hubs batches make encoding/json validate and copy
// every byte several times over.
//
// It checks the structure it walks (brackets, strings, commas, colons) and
// the shape of literals, but does not fully validate values it skips: it
// is a reader for trusted-shape input that must never panic on garbage,
// not a validator.
package jsonscan

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrSyntax is returned for input that is not the JSON value expected.
var ErrSyntax = errors.New("jsonscan: invalid JSON")

// maxDepth bounds nesting, as encoding/json does (10000).
const maxDepth = 10000

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// Trim returns b without leading and trailing JSON whitespace.
func Trim(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isSpace(b[i]) {
		i++
	}
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

// valueEnd returns the index just past the value starting at b[i]
// (no leading whitespace).
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, ErrSyntax
	}
	switch c := b[i]; {
	case c == '"':
		return stringEnd(b, i)
	case c == '{' || c == '[':
		return compositeEnd(b, i)
	default:
		return literalEnd(b, i)
	}
}

// plain marks the bytes that can appear in a string without ending it
// or starting an escape: everything but '"', '\\' and control characters.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainASCII is plain restricted to ASCII: bytes appendString copies as
// they are.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// stringEnd returns the index just past the string starting at b[i]=='"',
// checking its escapes.
func stringEnd(b []byte, i int) (int, error) {
	j := i + 1
	for {
		for j < len(b) && plain[b[j]] {
			j++
		}
		if j >= len(b) {
			return 0, ErrSyntax
		}
		switch b[j] {
		case '"':
			return j + 1, nil
		case '\\':
			if j+1 < len(b) && (b[j+1] == '"' || b[j+1] == '\\') {
				j += 2 // the common escapes of double-encoded JSON
				continue
			}
			n, err := escapeLen(b[j:])
			if err != nil {
				return 0, err
			}
			j += n
		default:
			return 0, ErrSyntax // a control character
		}
	}
}

// escapeLen returns the length of the escape sequence at s[0]=='\\'.
func escapeLen(s []byte) (int, error) {
	if len(s) < 2 {
		return 0, ErrSyntax
	}
	switch s[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
		if _, ok := hex4(s[2:]); ok {
			return 6, nil
		}
	}
	return 0, ErrSyntax
}

// compositeEnd returns the index just past the object or array starting
// at b[i], matching brackets and skipping strings.
func compositeEnd(b []byte, i int) (int, error) {
	var stackBuf [64]byte
	stack := append(stackBuf[:0], b[i])
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; c {
		case '"':
			end, err := stringEnd(b, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case '{', '[':
			if len(stack) == maxDepth {
				return 0, ErrSyntax
			}
			stack = append(stack, c)
		case '}', ']':
			open := byte('{')
			if c == ']' {
				open = '['
			}
			if stack[len(stack)-1] != open {
				return 0, ErrSyntax
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, ErrSyntax
}

// literalEnd returns the index just past true, false, null or a number.
func literalEnd(b []byte, i int) (int, error) {
	j := i
	for j < len(b) && !isSpace(b[j]) && b[j] != ',' && b[j] != ']' && b[j] != '}' && b[j] != ':' {
		j++
	}
	lit := string(b[i:j]) // no allocation: only compared or parsed
	switch lit {
	case "true", "false", "null":
		return j, nil
	}
	if !isNumber(b[i:j]) {
		return 0, ErrSyntax
	}
	return j, nil
}

// isNumber checks JSON's number grammar.
func isNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}

// Members calls fn with the unescaped name and the raw value of each member
// of the JSON object obj (surrounding whitespace allowed), in order, until
// fn returns false. Names are only valid during the call.
func Members(obj []byte, fn func(name, value []byte) bool) error {
	b := obj
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return ErrSyntax
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	var nameBuf []byte
	for {
		if i >= len(b) || b[i] != '"' {
			return ErrSyntax
		}
		end, err := stringEnd(b, i)
		if err != nil {
			return err
		}
		name := b[i+1 : end-1]
		if !simple(name) {
			if nameBuf, _, err = appendString(nameBuf[:0], b[i:end]); err != nil {
				return err
			}
			name = nameBuf
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return ErrSyntax
		}
		i = skipSpace(b, i+1)
		vend, err := valueEnd(b, i)
		if err != nil {
			return err
		}
		if !fn(name, b[i:vend]) {
			return nil
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return ErrSyntax
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return trailing(b, i+1)
		default:
			return ErrSyntax
		}
	}
}

// Elements calls fn with the raw value of each element of the JSON array
// arr (surrounding whitespace allowed), in order, until fn returns false.
func Elements(arr []byte, fn func(i int, value []byte) bool) error {
	b := arr
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return ErrSyntax
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return trailing(b, i+1)
	}
	for n := 0; ; n++ {
		end, err := valueEnd(b, i)
		if err != nil {
			return err
		}
		if !fn(n, b[i:end]) {
			return nil
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return ErrSyntax
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return trailing(b, i+1)
		default:
			return ErrSyntax
		}
	}
}

// trailing fails unless only whitespace follows b[i:].
func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return ErrSyntax
	}
	return nil
}

// IsNull reports whether raw is empty or the literal null.
func IsNull(raw []byte) bool {
	raw = Trim(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// Unquote returns the content of the JSON string literal raw. When raw
// has no escapes and is ASCII the result aliases raw; otherwise it is a
// new slice. Invalid UTF-8 and lone surrogates become U+FFFD, as in
// encoding/json.
func Unquote(raw []byte) ([]byte, error) {
	raw = Trim(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return nil, ErrSyntax
	}
	j := 1
	for j < len(raw) && plainASCII[raw[j]] {
		j++
	}
	if j == len(raw)-1 && raw[j] == '"' {
		return raw[1:j], nil
	}
	out, end, err := appendString(make([]byte, 0, len(raw)-2), raw)
	if err != nil || end != len(raw) {
		return nil, ErrSyntax
	}
	return out, nil
}

// String is Unquote for callers that want a string; ok is false for
// anything but a JSON string.
func String(raw []byte) (s string, ok bool) {
	b, err := Unquote(raw)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// Int parses a JSON number that is an integer (no fraction or exponent).
func Int(raw []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(Trim(raw)), 10, 64)
	return n, err == nil
}

// simple reports whether s needs no unescaping: no backslash, valid UTF-8.
func simple(s []byte) bool {
	for _, c := range s {
		if c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// UnquoteInPlace is Unquote writing the content over raw itself instead
// of allocating: the result aliases raw, whose bytes are overwritten. The
// content of a JSON string is never longer than the literal, with one
// exception: an invalid UTF-8 byte becomes the three bytes of U+FFFD, and
// should that overtake the unread input the rest is unquoted into a new
// slice (the result then aliases nothing).
func UnquoteInPlace(raw []byte) ([]byte, error) {
	raw = Trim(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return nil, ErrSyntax
	}
	j := 1
	for j < len(raw) && plainASCII[raw[j]] {
		j++
	}
	if j == len(raw)-1 && raw[j] == '"' {
		return raw[1:j], nil
	}
	out, end, err := unquoteInto(raw[:0], raw, true)
	if err != nil || end != len(raw) {
		return nil, ErrSyntax
	}
	return out, nil
}

// appendString appends the content of the string literal starting at
// lit[0]=='"' to dst and returns the index just past its closing quote.
func appendString(dst, lit []byte) ([]byte, int, error) {
	return unquoteInto(dst, lit, false)
}

// unquoteInto is appendString; with inPlace, dst is lit[:0] and the
// content is written over the literal as it is read. That is safe while
// the output stays behind the input: every step below consumes at least
// as many bytes as it appends (and reads them before appending), so
// len(dst) < i holds, except for an invalid UTF-8 byte, whose U+FFFD is
// three bytes; when that would catch up with the input, the output moves
// to a new slice.
func unquoteInto(dst, lit []byte, inPlace bool) ([]byte, int, error) {
	i := 1
	for {
		start := i
		for i < len(lit) && plainASCII[lit[i]] {
			i++
		}
		dst = append(dst, lit[start:i]...)
		if i >= len(lit) {
			return nil, 0, ErrSyntax
		}
		switch c := lit[i]; {
		case c == '"':
			return dst, i + 1, nil
		case c == '\\' && i+1 < len(lit) && (lit[i+1] == '"' || lit[i+1] == '\\'):
			// The escapes double-encoded JSON is made of.
			dst = append(dst, lit[i+1])
			i += 2
		case c == '\\':
			n, err := escapeLen(lit[i:])
			if err != nil {
				return nil, 0, err
			}
			dst = appendEscape(dst, lit[i:])
			if n == 6 {
				// A surrogate pair is two \u escapes read as one rune.
				if r, _ := hex4(lit[i+2:]); utf16.IsSurrogate(r) {
					if r2, ok := lowSurrogate(lit[i+6:]); ok && utf16.DecodeRune(r, r2) != utf8.RuneError {
						dst = dst[:len(dst)-utf8.RuneLen(utf8.RuneError)]
						dst = utf8.AppendRune(dst, utf16.DecodeRune(r, r2))
						n = 12
					}
				}
			}
			i += n
		case c < 0x20:
			return nil, 0, ErrSyntax
		default: // non-ASCII
			r, size := utf8.DecodeRune(lit[i:])
			if r == utf8.RuneError && size == 1 {
				if inPlace && len(dst)+utf8.RuneLen(utf8.RuneError) > i {
					dst = append(make([]byte, 0, len(dst)+3*(len(lit)-i)), dst...)
					inPlace = false
				}
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, lit[i:i+size]...)
			}
			i += size
		}
	}
}

// appendEscape appends the character of the (valid) escape at s; a \u
// surrogate is appended as U+FFFD, which appendString replaces when a low
// surrogate follows.
func appendEscape(dst, s []byte) []byte {
	switch e := s[1]; e {
	case 'b':
		return append(dst, '\b')
	case 'f':
		return append(dst, '\f')
	case 'n':
		return append(dst, '\n')
	case 'r':
		return append(dst, '\r')
	case 't':
		return append(dst, '\t')
	case 'u':
		r, _ := hex4(s[2:])
		if utf16.IsSurrogate(r) {
			r = utf8.RuneError
		}
		return utf8.AppendRune(dst, r)
	default: // '"', '\\', '/'
		return append(dst, e)
	}
}

// lowSurrogate reads a following \uXXXX escape.
func lowSurrogate(s []byte) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	return hex4(s[2:])
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}
