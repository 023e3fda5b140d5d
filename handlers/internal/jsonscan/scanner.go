package jsonscan

// generousAlloc: see Scanner.Unquote.
const generousAlloc = 64 << 20

// Scanner walks one JSON document in place, for callers that descend into
// nested values and must not scan a large value twice (once to find its
// end, once to read it): each read method consumes exactly one value.
type Scanner struct {
	b []byte
	i int
}

// NewScanner returns a Scanner at the start of b.
func NewScanner(b []byte) *Scanner { return &Scanner{b: b} }

func (s *Scanner) peek() byte {
	s.i = skipSpace(s.b, s.i)
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// IsString reports whether the next value is a string.
func (s *Scanner) IsString() bool { return s.peek() == '"' }

// IsObject reports whether the next value is an object.
func (s *Scanner) IsObject() bool { return s.peek() == '{' }

// IsNull reports whether the next value is null.
func (s *Scanner) IsNull() bool {
	return s.peek() == 'n' && len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null"
}

// Raw consumes the next value and returns its text.
func (s *Scanner) Raw() ([]byte, error) {
	s.peek()
	start := s.i
	end, err := valueEnd(s.b, start)
	if err != nil {
		return nil, err
	}
	s.i = end
	return s.b[start:end], nil
}

// Unquote consumes the next value, which must be a string, and returns its
// content (see the package function Unquote for aliasing).
func (s *Scanner) Unquote() ([]byte, error) {
	if s.peek() != '"' {
		return nil, ErrSyntax
	}
	b := s.b[s.i:]
	j := 1
	for j < len(b) && plainASCII[b[j]] {
		j++
	}
	if j < len(b) && b[j] == '"' {
		s.i += j + 1
		return b[1:j], nil
	}
	// The content is no longer than the rest of the document, so up to
	// generousAlloc one allocation of that size saves a second pass to
	// find the end first (the bigger saving on batches of megabytes);
	// beyond it, memory matters more and the buffer is sized exactly.
	size := len(b) - 1
	if size > generousAlloc {
		end, err := stringEnd(b, 0)
		if err != nil {
			return nil, err
		}
		size = end - 2
	}
	out, end, err := appendString(make([]byte, 0, size), b)
	if err != nil {
		return nil, err
	}
	s.i += end
	return out, nil
}

// UnquoteInPlace is Unquote writing the content over the string in the
// document (see the package function UnquoteInPlace): no allocation, but
// the document's bytes of that string are overwritten. Only the string
// just consumed is touched, so the rest of the document still reads.
func (s *Scanner) UnquoteInPlace() ([]byte, error) {
	if s.peek() != '"' {
		return nil, ErrSyntax
	}
	b := s.b[s.i:]
	j := 1
	for j < len(b) && plainASCII[b[j]] {
		j++
	}
	if j < len(b) && b[j] == '"' {
		s.i += j + 1
		return b[1:j], nil
	}
	out, end, err := unquoteInto(b[:0], b, true)
	if err != nil {
		return nil, err
	}
	s.i += end
	return out, nil
}

// Object consumes the next value, which must be an object, calling fn with
// each member's unescaped name while the scanner is positioned at the
// member's value. fn may consume the value with any read method; a value
// fn leaves unread is skipped. Names are only valid during the call.
func (s *Scanner) Object(fn func(name []byte) error) error {
	if s.peek() != '{' {
		return ErrSyntax
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	var nameBuf []byte
	for {
		if s.peek() != '"' {
			return ErrSyntax
		}
		end, err := stringEnd(s.b, s.i)
		if err != nil {
			return err
		}
		name := s.b[s.i+1 : end-1]
		if !simple(name) {
			if nameBuf, _, err = appendString(nameBuf[:0], s.b[s.i:end]); err != nil {
				return err
			}
			name = nameBuf
		}
		s.i = end
		if s.peek() != ':' {
			return ErrSyntax
		}
		s.i++
		s.peek()
		at := s.i
		if err := fn(name); err != nil {
			return err
		}
		if s.i == at {
			if _, err := s.Raw(); err != nil {
				return err
			}
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return ErrSyntax
		}
	}
}

// End fails unless only whitespace remains.
func (s *Scanner) End() error { return trailing(s.b, s.i) }
