package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// node is one value in a twin section (tags, desired or reported): an
// object (kids != nil) or a leaf. Leaves hold what encoding/json decodes with
// UseNumber (string, json.Number, bool, []any), so numbers stay exact.
// updated and version are the node's $lastUpdated and $lastUpdatedVersion
// (version is 0 outside desired, and on a desired root never patched).
type node struct {
	kids    map[string]*node
	val     any
	updated time.Time
	version int64
}

func newObject() *node { return &node{kids: map[string]*node{}} }

func (n *node) isObject() bool { return n.kids != nil }

// touch stamps a node changed by an operation.
func (n *node) touch(at time.Time, version int64) {
	n.updated = at
	n.version = version
}

// merge applies a validated patch: null deletes a key, an object merges
// into an object and replaces anything else, any other value replaces.
// Every node the patch reaches, the parents included, is stamped, so an
// object's $lastUpdated is never older than its newest child.
func (n *node) merge(patch map[string]any, at time.Time, version int64) {
	n.touch(at, version)
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(n.kids, k)
		case map[string]any:
			kid := n.kids[k]
			if kid == nil || !kid.isObject() {
				kid = newObject()
				n.kids[k] = kid
			}
			kid.merge(pv, at, version)
		default:
			n.kids[k] = &node{val: pv, updated: at, version: version}
		}
	}
}

// value is the node as plain JSON data (no metadata). Objects come back as
// fresh maps; leaves are shared, so callers must not modify them.
func (n *node) value() any {
	if !n.isObject() {
		return n.val
	}
	m := make(map[string]any, len(n.kids))
	for k, kid := range n.kids {
		m[k] = kid.value()
	}
	return m
}

// metaTimeLayout is IoT Hub's $lastUpdated form: UTC, seven fractional digits.
const metaTimeLayout = "2006-01-02T15:04:05.0000000Z"

// formatMetaTime writes a $lastUpdated. A section never changed carries the
// zero time, which IoT Hub spells without fraction.
func formatMetaTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(metaTimeLayout)
}

// metadata is the node's $metadata entry: its own stamp and, for objects,
// its children's.
func (n *node) metadata(withVersion bool) map[string]any {
	m := n.stamp(withVersion)
	for k, kid := range n.kids {
		m[k] = kid.metadata(withVersion)
	}
	return m
}

func (n *node) stamp(withVersion bool) map[string]any {
	m := make(map[string]any, len(n.kids)+2)
	m["$lastUpdated"] = formatMetaTime(n.updated)
	if withVersion && n.version > 0 {
		m["$lastUpdatedVersion"] = n.version
	}
	return m
}

// patchMetadata is the $metadata of the keys a patch changed: the stamps
// along each path the patch reached, and full metadata below where a patch
// value replaced rather than merged. Deleted keys have none.
func (n *node) patchMetadata(patch map[string]any, withVersion bool) map[string]any {
	m := n.stamp(withVersion)
	for k, v := range patch {
		kid := n.kids[k]
		if v == nil || kid == nil {
			continue
		}
		if pv, ok := v.(map[string]any); ok && kid.isObject() {
			m[k] = kid.patchMetadata(pv, withVersion)
		} else {
			m[k] = kid.metadata(withVersion)
		}
	}
	return m
}

// sortedKeys is the order sections are written in: deterministic.
func (n *node) sortedKeys() []string { return slices.Sorted(maps.Keys(n.kids)) }

// storedNode is the on-disk form of a node: leaves have V.
type storedNode struct {
	K map[string]*storedNode `json:"k,omitempty"`
	V json.RawMessage        `json:"v,omitempty"`
	T int64                  `json:"t,omitempty"` // unix ns; 0 = zero time
	N int64                  `json:"n,omitempty"`
}

func (n *node) stored() (*storedNode, error) {
	sn := &storedNode{N: n.version}
	if !n.updated.IsZero() {
		sn.T = n.updated.UnixNano()
	}
	if !n.isObject() {
		v, err := marshalJSON(n.val)
		if err != nil {
			return nil, err
		}
		sn.V = v
		return sn, nil
	}
	sn.K = make(map[string]*storedNode, len(n.kids))
	for k, kid := range n.kids {
		skid, err := kid.stored()
		if err != nil {
			return nil, err
		}
		sn.K[k] = skid
	}
	return sn, nil
}

func (n *node) load(sn *storedNode) error {
	n.version = sn.N
	if sn.T != 0 {
		n.updated = time.Unix(0, sn.T).UTC()
	}
	if len(sn.V) > 0 {
		v, err := decodeLeaf(sn.V)
		if err != nil {
			return err
		}
		// Files written before dates were normalised still hold them as sent.
		n.val, _ = normalizeDates(v)
		return nil
	}
	n.kids = make(map[string]*node, len(sn.K))
	for k, skid := range sn.K {
		if skid == nil {
			return fmt.Errorf("twin key %q has no value", k)
		}
		kid := &node{}
		if err := kid.load(skid); err != nil {
			return err
		}
		n.kids[k] = kid
	}
	return nil
}

// decodeLeaf decodes a stored leaf. Leaves were written by marshalJSON, so
// a number's text is already canonical JSON and only arrays need the full
// decoder: this keeps reading 10,000 twins for a query cheap.
func decodeLeaf(b []byte) (any, error) {
	switch c := b[0]; {
	case c == '"':
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	case c == 't' || c == 'f':
		return c == 't', nil
	case c == '-' || '0' <= c && c <= '9':
		return json.Number(b), nil
	}
	return decodeJSON(b)
}

// decodeJSON decodes exactly one JSON value, keeping numbers as json.Number.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if rest := bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, fmt.Errorf("data after the JSON value at offset %d", dec.InputOffset())
	}
	return v, nil
}

// marshalJSON encodes like json.Marshal but leaves <, > and & alone, as IoT
// Hub does.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// member and object write JSON objects whose keys keep the given order:
// IoT Hub puts "$metadata" and "$version" after a section's properties.
type member struct {
	key string
	val any
}

type object []member

func (o object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := marshalJSON(m.key)
		if err != nil {
			return nil, err
		}
		v, err := marshalJSON(m.val)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.key, err)
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
