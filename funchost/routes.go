package funchost

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// routeTemplate is an HTTP trigger's route in the simple forms of ASP.NET
// route templates: literal segments, {name}, {name?}, {name=default},
// {name:constraint}, and a final {*rest} catch-all. Complex segments
// ("file.{ext}") are rejected rather than half-supported.
type routeTemplate struct {
	text string
	segs []routeSegment
}

type routeSegment struct {
	literal    string // set for literal segments
	param      string
	optional   bool
	catchAll   bool
	def        *string
	constraint []string // lower case, e.g. "int", "alpha"
}

// parseRoute parses a template such as "devices/{deviceId}/reboot".
func parseRoute(tmpl string) (routeTemplate, error) {
	text := strings.Trim(strings.TrimPrefix(tmpl, "~"), "/")
	r := routeTemplate{text: text}
	if text == "" {
		return r, nil
	}
	seen := map[string]bool{}
	parts := strings.Split(text, "/")
	for i, part := range parts {
		if part == "" {
			return routeTemplate{}, errors.New("empty segment")
		}
		if !strings.ContainsAny(part, "{}") {
			if strings.ContainsAny(part, "?#") {
				return routeTemplate{}, fmt.Errorf("segment %q: literals may not contain ? or #", part)
			}
			r.segs = append(r.segs, routeSegment{literal: part})
			continue
		}
		seg, err := parseParam(part)
		if err != nil {
			return routeTemplate{}, fmt.Errorf("segment %q: %w", part, err)
		}
		key := strings.ToLower(seg.param)
		if seen[key] {
			return routeTemplate{}, fmt.Errorf("parameter %q appears twice", seg.param)
		}
		seen[key] = true
		if seg.catchAll && i != len(parts)-1 {
			return routeTemplate{}, fmt.Errorf("catch-all %q must be the last segment", seg.param)
		}
		r.segs = append(r.segs, seg)
	}
	// Only a tail of the template may be left out of a URL.
	for i := len(r.segs) - 1; i > 0; i-- {
		if !r.segs[i].omittable() && r.segs[i-1].omittable() {
			return routeTemplate{}, fmt.Errorf("optional parameter %q must come after the required segments", r.segs[i-1].param)
		}
	}
	return r, nil
}

func parseParam(part string) (routeSegment, error) {
	if len(part) < 3 || part[0] != '{' || part[len(part)-1] != '}' || strings.Count(part, "{") != 1 || strings.Count(part, "}") != 1 {
		return routeSegment{}, errors.New("a parameter must be a whole segment, {name}; complex segments are not supported locally")
	}
	inner := part[1 : len(part)-1]
	var seg routeSegment
	if rest, ok := strings.CutPrefix(inner, "**"); ok {
		seg.catchAll, inner = true, rest
	} else if rest, ok := strings.CutPrefix(inner, "*"); ok {
		seg.catchAll, inner = true, rest
	}
	if name, def, ok := strings.Cut(inner, "="); ok {
		inner = name
		seg.def = &def
	}
	if name, ok := strings.CutSuffix(inner, "?"); ok {
		inner, seg.optional = name, true
	}
	name, constraints, _ := strings.Cut(inner, ":")
	if name == "" || strings.ContainsAny(name, "?*=:/") {
		return routeSegment{}, fmt.Errorf("%q is not a parameter name", name)
	}
	seg.param = name
	if constraints != "" {
		for c := range strings.SplitSeq(constraints, ":") {
			seg.constraint = append(seg.constraint, strings.ToLower(c))
		}
	}
	if seg.optional && seg.def != nil {
		return routeSegment{}, errors.New("a parameter cannot be both optional and have a default")
	}
	return seg, nil
}

// omittable reports whether a URL may end before this segment.
func (s routeSegment) omittable() bool {
	return s.optional || s.catchAll || s.def != nil
}

// match matches the unescaped path segments after the route prefix and
// returns the route values.
func (r routeTemplate) match(path []string) (map[string]string, bool) {
	params := map[string]string{}
	for i, seg := range r.segs {
		if seg.catchAll {
			if rest := strings.Join(path[min(i, len(path)):], "/"); rest != "" {
				params[seg.param] = rest
			} else if seg.def != nil {
				params[seg.param] = *seg.def
			}
			return params, true
		}
		if i >= len(path) {
			if !seg.omittable() {
				return nil, false
			}
			if seg.def != nil {
				params[seg.param] = *seg.def
			}
			continue
		}
		v := path[i]
		if seg.literal != "" {
			if !strings.EqualFold(seg.literal, v) {
				return nil, false
			}
			continue
		}
		if v == "" || !meetsConstraints(v, seg.constraint) {
			return nil, false
		}
		params[seg.param] = v
	}
	return params, len(path) <= len(r.segs)
}

// meetsConstraints checks the constraints the local host knows; the rest
// (regex, datetime, ...) accept anything, which is logged at start.
func meetsConstraints(v string, constraints []string) bool {
	for _, c := range constraints {
		var ok bool
		switch c {
		case "int":
			_, err := strconv.ParseInt(v, 10, 32)
			ok = err == nil
		case "long":
			_, err := strconv.ParseInt(v, 10, 64)
			ok = err == nil
		case "bool":
			ok = strings.EqualFold(v, "true") || strings.EqualFold(v, "false")
		case "alpha":
			ok = strings.IndexFunc(v, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') }) < 0
		case "double", "float", "decimal":
			_, err := strconv.ParseFloat(v, 64)
			ok = err == nil
		case "guid":
			ok = isGUID(v)
		default:
			ok = true
		}
		if !ok {
			return false
		}
	}
	return true
}

// unknownConstraints lists the constraints meetsConstraints does not check.
func (r routeTemplate) unknownConstraints() []string {
	var out []string
	for _, s := range r.segs {
		for _, c := range s.constraint {
			switch c {
			case "int", "long", "bool", "alpha", "double", "float", "decimal", "guid":
			default:
				out = append(out, c)
			}
		}
	}
	return out
}

func isGUID(v string) bool {
	v = strings.Trim(v, "{}")
	if len(v) != 36 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// routeTable maps request paths to HTTP functions.
type routeTable struct {
	prefix string // routePrefix without slashes; "" for none
	fns    []*function
}

// newRouteTable orders the functions so that more specific templates are
// tried first, as ASP.NET's route precedence does: a literal beats a
// constrained parameter, which beats a parameter, an optional one and,
// last, a catch-all.
func newRouteTable(prefix string, fns []*function) *routeTable {
	t := &routeTable{prefix: prefix}
	for _, fn := range fns {
		if fn.trigger.is(typeHTTPTrigger) && !fn.disabled {
			t.fns = append(t.fns, fn)
		}
	}
	sort.SliceStable(t.fns, func(i, j int) bool {
		return precedes(t.fns[i].route, t.fns[j].route)
	})
	return t
}

func precedes(a, b routeTemplate) bool {
	for i := 0; i < len(a.segs) && i < len(b.segs); i++ {
		ra, rb := a.segs[i].rank(), b.segs[i].rank()
		if ra != rb {
			return ra < rb
		}
	}
	return len(a.segs) > len(b.segs)
}

func (s routeSegment) rank() int {
	switch {
	case s.literal != "":
		return 0
	case s.catchAll:
		return 4
	case s.optional || s.def != nil:
		return 3
	case len(s.constraint) > 0:
		return 1
	}
	return 2
}

// match finds the function serving escapedPath (the request's escaped
// path) and its route values. A route that matches with another method
// still means 404, as the host answers.
func (t *routeTable) match(method, escapedPath string) (*function, map[string]string, bool) {
	segs, ok := t.split(escapedPath)
	if !ok {
		return nil, nil, false
	}
	for _, fn := range t.fns {
		if params, ok := fn.route.match(segs); ok && fn.allows(method) {
			return fn, params, true
		}
	}
	return nil, nil, false
}

// split removes the route prefix and unescapes each segment; %2F stays
// inside its segment.
func (t *routeTable) split(escapedPath string) ([]string, bool) {
	p := strings.TrimPrefix(escapedPath, "/")
	if t.prefix != "" {
		n := len(t.prefix)
		if len(p) < n || !strings.EqualFold(p[:n], t.prefix) || (len(p) > n && p[n] != '/') {
			return nil, false
		}
		p = strings.TrimPrefix(p[n:], "/")
	}
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil, true
	}
	parts := strings.Split(p, "/")
	for i, s := range parts {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, false
		}
		parts[i] = u
	}
	return parts, true
}

// publicPath is a function's URL path for logs: /api/devices/{deviceId}/reboot.
func (t *routeTable) publicPath(fn *function) string {
	p := "/"
	if t.prefix != "" {
		p += t.prefix
		if fn.route.text != "" {
			p += "/"
		}
	}
	return p + fn.route.text
}
