package query

import (
	"errors"
	"fmt"
)

// ErrUnsupportedCollection is returned by Run for collections the local hub
// can parse but not evaluate (devices.modules).
var ErrUnsupportedCollection = errors.New("collection not supported by the local hub")

// SyntaxError reports a query the hub rejects before running it.
type SyntaxError struct {
	Msg string
	// Pos is the 0-based byte offset into the query text where the problem was found.
	Pos int
	// Line and Column (1-based, Column counted in characters) locate Pos for people.
	Line, Column int
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("query syntax error at line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// newSyntaxError fills Line and Column from text so messages can point at the spot.
func newSyntaxError(text string, pos int, msg string) *SyntaxError {
	pos = min(max(pos, 0), len(text))
	line, col := 1, 1
	for _, r := range text[:pos] {
		if r == '\n' {
			line, col = line+1, 1
			continue
		}
		col++
	}
	return &SyntaxError{Msg: msg, Pos: pos, Line: line, Column: col}
}
