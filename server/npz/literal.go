package npz

import (
	"errors"
	"fmt"
	"strconv"
)

// litParser reads the subset of Python literals a .npy header uses:
// dictionaries, tuples and lists, strings, integers, True, False and None.
// Values come back as map[string]any, []any, string, int64, bool or nil.
type litParser struct {
	s     string
	i     int
	depth int
}

// maxDepth bounds nesting: numpy headers nest two deep (a dict holding a
// tuple), structured dtypes a few more.
const maxDepth = 16

func (p *litParser) parse() (any, error) {
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected %q at offset %d", p.s[p.i], p.i)
	}
	return v, nil
}

func (p *litParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

var errEnd = errors.New("unexpected end")

func (p *litParser) value() (any, error) {
	p.space()
	if p.i >= len(p.s) {
		return nil, errEnd
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.dict()
	case c == '(':
		return p.seq(')')
	case c == '[':
		return p.seq(']')
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.integer()
	default:
		for _, w := range []struct {
			word string
			v    any
		}{{"True", true}, {"False", false}, {"None", nil}} {
			if len(p.s)-p.i >= len(w.word) && p.s[p.i:p.i+len(w.word)] == w.word {
				p.i += len(w.word)
				return w.v, nil
			}
		}
		return nil, fmt.Errorf("unexpected %q at offset %d", c, p.i)
	}
}

func (p *litParser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return fmt.Errorf("nested more than %d deep", maxDepth)
	}
	return nil
}

func (p *litParser) dict() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.i++ // {
	m := map[string]any{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return m, nil
		}
		k, err := p.value()
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("dictionary key %v is not a string", k)
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, fmt.Errorf("want ':' after key %q", key)
		}
		p.i++
		if m[key], err = p.value(); err != nil {
			return nil, err
		}
		if done, err := p.next('}'); err != nil || done {
			return m, err
		}
	}
}

// next consumes a ',' (reporting false) or the closing bracket (true).
func (p *litParser) next(end byte) (bool, error) {
	p.space()
	if p.i >= len(p.s) {
		return false, errEnd
	}
	switch p.s[p.i] {
	case ',':
		p.i++
		return false, nil
	case end:
		p.i++
		return true, nil
	}
	return false, fmt.Errorf("want ',' or %q at offset %d, got %q", end, p.i, p.s[p.i])
}

func (p *litParser) seq(end byte) (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.i++ // ( or [
	items := []any{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == end {
			p.i++
			return items, nil
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		items = append(items, v)
		if done, err := p.next(end); err != nil || done {
			return items, err
		}
	}
}

func (p *litParser) str() (any, error) {
	q := p.s[p.i]
	p.i++
	var b []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case q:
			return string(b), nil
		case '\\':
			if p.i >= len(p.s) {
				return nil, errEnd
			}
			e := p.s[p.i]
			p.i++
			if e != '\\' && e != '\'' && e != '"' {
				return nil, fmt.Errorf("unsupported escape \\%c in a string", e)
			}
			b = append(b, e)
		default:
			b = append(b, c)
		}
	}
	return nil, fmt.Errorf("unterminated string")
}

func (p *litParser) integer() (any, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	v, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("integer %q: %v", p.s[start:p.i], err)
	}
	if p.i < len(p.s) && p.s[p.i] == 'L' { // Python 2 long, as old numpy wrote
		p.i++
	}
	return v, nil
}
