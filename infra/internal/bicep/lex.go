// Package bicep reads the Bicep this repository writes, so tests can check
// infra/*.bicep without the Bicep CLI. It is not a Bicep compiler:
//
//   - [Lex] puts every character in exactly one token (whitespace and comments
//     are trivia tokens), so the token texts concatenate back to the input.
//     Strings keep ${...} interpolations whole, including nested strings.
//   - [Parse] reads top-level declarations (param, var, resource, module,
//     output, ...), each with its decorators and its value as an [Expr]. An
//     expression is a flat list of nodes: object and array literals (parsed
//     recursively), strings, numbers, identifiers, parenthesised groups, and
//     any other token as-is. Operators get no precedence: the checks need
//     literals and names, not evaluation.
//
// Object properties and array items end at a newline or a comma, as in Bicep;
// newlines inside parentheses are ignored, also as in Bicep.
package bicep

import (
	"errors"
	"fmt"
	"strings"
)

// TokenKind classifies a [Token].
type TokenKind int

const (
	TokenTrivia  TokenKind = iota // whitespace other than newlines, comments, #pragmas
	TokenNewline                  // "\n" (a "\r\n" pair is one token)
	TokenIdent
	TokenString // '...' with escapes and ${...}; or '''...'''
	TokenNumber
	TokenPunct
)

// Token is one lexical token: its kind, its exact source text and the line
// it starts on (1-based).
type Token struct {
	Kind TokenKind
	Text string
	Line int
}

// Lex splits src into tokens. It fails on an unterminated string or comment
// and on characters Bicep does not allow outside strings.
func Lex(src string) ([]Token, error) {
	var toks []Token
	line := 1
	for i := 0; i < len(src); {
		start := i
		kind, err := scan(src, &i)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		text := src[start:i]
		toks = append(toks, Token{Kind: kind, Text: text, Line: line})
		line += strings.Count(text, "\n")
	}
	return toks, nil
}

// twoCharPunct are the operators lexed as one token.
var twoCharPunct = []string{"==", "!=", "<=", ">=", "&&", "||", "??", "=~", "!~", "=>", "?.", ".?"}

func scan(src string, i *int) (TokenKind, error) {
	c := src[*i]
	rest := src[*i:]
	switch {
	case c == '\n':
		*i++
		return TokenNewline, nil
	case strings.HasPrefix(rest, "\r\n"):
		*i += 2
		return TokenNewline, nil
	case c == ' ' || c == '\t' || c == '\r':
		for *i < len(src) && (src[*i] == ' ' || src[*i] == '\t' || (src[*i] == '\r' && !strings.HasPrefix(src[*i:], "\r\n"))) {
			*i++
		}
		return TokenTrivia, nil
	case strings.HasPrefix(rest, "//"), c == '#': // comments, #disable-next-line
		if end := strings.IndexByte(rest, '\n'); end >= 0 {
			*i += end
		} else {
			*i = len(src)
		}
		return TokenTrivia, nil
	case strings.HasPrefix(rest, "/*"):
		end := strings.Index(rest[2:], "*/")
		if end < 0 {
			return 0, errors.New("unterminated comment")
		}
		*i += 2 + end + 2
		return TokenTrivia, nil
	case strings.HasPrefix(rest, "'''"):
		end := strings.Index(rest[3:], "'''")
		if end < 0 {
			return 0, errors.New("unterminated multi-line string")
		}
		*i += 3 + end + 3
		return TokenString, nil
	case c == '\'':
		return TokenString, scanString(src, i)
	case isIdentStart(c):
		for *i < len(src) && isIdentPart(src[*i]) {
			*i++
		}
		return TokenIdent, nil
	case c >= '0' && c <= '9':
		for *i < len(src) && src[*i] >= '0' && src[*i] <= '9' {
			*i++
		}
		return TokenNumber, nil
	case strings.IndexByte("{}[]():,.?!=<>&|+-*/%@", c) >= 0:
		for _, p := range twoCharPunct {
			if strings.HasPrefix(rest, p) {
				*i += len(p)
				return TokenPunct, nil
			}
		}
		*i++
		return TokenPunct, nil
	}
	return 0, fmt.Errorf("unexpected character %q", c)
}

// scanString consumes a single-quoted string starting at src[*i], including
// any ${...} interpolations (which may hold strings and braces of their own).
func scanString(src string, i *int) error {
	*i++ // opening quote
	for *i < len(src) {
		switch {
		case src[*i] == '\\':
			*i += 2
		case src[*i] == '\'':
			*i++
			return nil
		case src[*i] == '\n':
			return errors.New("newline in string")
		case strings.HasPrefix(src[*i:], "${"):
			*i += 2
			if err := scanInterpolation(src, i); err != nil {
				return err
			}
		default:
			*i++
		}
	}
	*i = len(src) // an escape at the very end may have stepped past it
	return errors.New("unterminated string")
}

// scanInterpolation consumes an interpolated expression up to and including
// its closing brace.
func scanInterpolation(src string, i *int) error {
	depth := 0
	for *i < len(src) {
		switch src[*i] {
		case '\'':
			if err := scanString(src, i); err != nil {
				return err
			}
			continue
		case '{':
			depth++
		case '}':
			if depth == 0 {
				*i++
				return nil
			}
			depth--
		}
		*i++
	}
	return errors.New("unterminated interpolation")
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }
