package rollout

import (
	"errors"
	"fmt"
	"strings"
)

// MaxCondition bounds a selection's query condition: it is kept in the
// record, within IoT Hub's 8 KB of tags (TestLargestRecordFitsInTags).
const MaxCondition = 1024

// CheckCondition checks that a caller's twin query condition is one
// self-contained expression, so that the app can combine it with its own
// conditions as "(condition) AND ...": string literals ('…' or "…", with
// backslash escapes) and quoted names ([[…]]) are closed, and parentheses
// and brackets balance outside them. A condition such as "a = 1) OR (1 = 1"
// would otherwise escape its parentheses. Whether it is a valid condition
// is IoT Hub's to say: the app runs it and passes the hub's error on.
//
// The whole query forms a job also takes ("FROM devices WHERE ...", "*")
// are the caller's to strip: "*" is handled before this check.
func CheckCondition(s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return errors.New("the condition is empty")
	case len(s) > MaxCondition:
		return fmt.Errorf("the condition is %d bytes long; at most %d are accepted", len(s), MaxCondition)
	}
	return checkStructure(s)
}

// checkStructure is CheckCondition without the length bounds.
func checkStructure(s string) error {
	var stack []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < ' ' && c != '\t' && c != '\n' && c != '\r', c == 0x7f:
			return fmt.Errorf("control character at offset %d", i)
		case c == '\'' || c == '"':
			end, err := skipLiteral(s, i)
			if err != nil {
				return err
			}
			i = end
		case c == '[' && i+1 < len(s) && s[i+1] == '[':
			end := strings.Index(s[i+2:], "]]")
			if end < 0 {
				return fmt.Errorf("the quoted name starting at offset %d is not closed with ]]", i)
			}
			i += 2 + end + 1
		case c == '(' || c == '[':
			stack = append(stack, c)
		case c == ')' || c == ']':
			open := byte('(')
			if c == ']' {
				open = '['
			}
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return fmt.Errorf("unbalanced %q at offset %d", c, i)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("%d unclosed %q", len(stack), stack[len(stack)-1])
	}
	return nil
}

// skipLiteral returns the offset of the quote closing the literal that
// opens at s[i].
func skipLiteral(s string, i int) (int, error) {
	quote := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++ // the escaped character, whatever it is: the hub judges escapes
		case quote:
			return j, nil
		}
	}
	return 0, fmt.Errorf("the string literal starting at offset %d is not closed", i)
}
