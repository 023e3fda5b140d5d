package rest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/iothub-reboot/devmgmt/localhub/internal/query"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// Query paging: IoT Hub pages at most 100 items and says so by sending
// x-ms-continuation, only while more pages remain (Node loops forever on
// an empty header).
const (
	maxPageItems       = 100
	headerMaxItemCount = "x-ms-max-item-count"
	headerContinuation = "x-ms-continuation"
	headerItemType     = "x-ms-item-type"
	continuationPrefix = "localhub-offset:"
)

// handleQuery serves POST /devices/query over the twins in the registry.
// Each page re-runs the query and slices it; the continuation token is the
// offset of the next page.
func handleQuery(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		text, herr := readQueryText(w, r)
		if herr != nil {
			writeError(w, d.Now(), classic, herr)
			return
		}
		pageSize := maxItemCount(r.Header.Get(headerMaxItemCount))
		offset, herr := parseContinuation(r.Header.Get(headerContinuation))
		if herr != nil {
			writeError(w, d.Now(), classic, herr)
			return
		}
		q, err := query.Parse(text)
		if err != nil {
			writeError(w, d.Now(), classic, queryError(err))
			return
		}
		res, herr := runQuery(d, q)
		if herr != nil {
			writeError(w, d.Now(), classic, herr)
			return
		}

		items := res.Items
		offset = min(offset, len(items))
		end := min(offset+pageSize, len(items))
		page := items[offset:end]
		if page == nil {
			page = []any{}
		}
		if end < len(items) {
			w.Header().Set(headerContinuation, formatContinuation(end))
		}
		w.Header().Set(headerItemType, res.ItemType)
		writeJSON(w, http.StatusOK, page)
	})
}

// readQueryText takes the query from {"query": ...}; the key is matched
// case-insensitively because the Go SDK sends "Query".
func readQueryText(w http.ResponseWriter, r *http.Request) (string, *hubError) {
	body, herr := decode[map[string]json.RawMessage](w, r)
	if herr != nil {
		return "", herr
	}
	for k, v := range body {
		if !strings.EqualFold(k, "query") {
			continue
		}
		var text string
		if err := json.Unmarshal(v, &text); err != nil {
			return "", errArgumentInvalid("query must be a string.")
		}
		if strings.TrimSpace(text) == "" {
			break
		}
		return text, nil
	}
	return "", errArgumentNull("query is null or empty.")
}

// runQuery runs q over its collection: the device twins, or every
// device's part in every job (devices.jobs). Module twins do not exist
// locally, so their queries return no items.
func runQuery(d Deps, q *query.Query) (query.Result, *hubError) {
	var (
		docs []map[string]any
		err  error
	)
	switch {
	case q.From() == query.CollectionDevices:
		docs, err = twinDocuments(d.Registry)
	case q.From() == query.CollectionJobs && d.Jobs != nil:
		docs, err = deviceJobDocuments(d)
	default:
		return query.Result{Items: []any{}, ItemType: q.ItemType()}, nil
	}
	if err != nil {
		return query.Result{}, errServer(err.Error())
	}
	res, err := q.Run(docs)
	if err != nil {
		return query.Result{}, queryError(err)
	}
	return res, nil
}

// twinDocuments are the twins as query documents: as GET /twins/{id}
// returns them, so queries address the wire's field names. Documents are
// shared by every query until their twin changes (see twinDocs): nothing
// may modify them, and query.Run does not.
func twinDocuments(reg *registry.Store) ([]map[string]any, error) {
	vals, err := reg.CachedTwins(twinDocs)
	if err != nil {
		return nil, err
	}
	docs := make([]map[string]any, len(vals))
	for i, v := range vals {
		docs[i] = v.(map[string]any)
	}
	return docs, nil
}

// twinDocs keeps every twin's query document in the registry, which drops
// a document when anything its twin shows changes. One cache for the
// package, so the REST API and the job engine's device selection share
// the documents of a registry.
var twinDocs = registry.NewTwinCache(
	func(t registry.Twin) (any, error) { return twinDocument(t) },
	func(prev any, l registry.LiveState) (any, error) { return liveTwinDocument(prev.(map[string]any), l) },
).Bounded(twinDocBudget, docBytes)

// twinDocBudget bounds the documents a registry keeps: 256 MiB, some
// 28,000 twins of a few tags and a reported reboot (about 9 KB each), fewer
// of IoT Hub's largest. The twins beyond it are built by every query, as
// before there was a cache.
const twinDocBudget = 256 << 20

// docBytes estimates the heap a query document keeps on a 64-bit machine:
// boxed strings and numbers, map slots, slices of interfaces.
// BenchmarkTwinCacheMemory reports it against the measured heap.
func docBytes(v any) int64 {
	switch x := v.(type) {
	case string:
		return 16 + int64(len(x))
	case float64:
		return 8
	case map[string]any:
		n := mapBytes(len(x))
		for k, kv := range x {
			n += int64(len(k)) + docBytes(kv)
		}
		return n
	case []any:
		n := int64(24 + 16*len(x))
		for _, e := range x {
			n += docBytes(e)
		}
		return n
	}
	return 0 // nil, bool: no allocation of their own
}

// mapBytes is a map[string]any of n entries: its header and slots of a
// 16-byte key, a 16-byte value and a control byte, eight to a group, kept
// at most 7/8 full in a power of two of slots beyond one group.
func mapBytes(n int) int64 {
	slots := 8
	for slots*7 < n*8 {
		slots *= 2
	}
	return 48 + int64(slots)*33
}

// liveTwinDocument is prev, a twin's document, with the twin's new live
// state: what twinDocument of the twin now gives, without reading it. prev
// is shared, so the copy is made first; its nested objects are shared too,
// unchanged.
func liveTwinDocument(prev map[string]any, l registry.LiveState) (map[string]any, error) {
	b := docBuilder{ok: true}
	doc := maps.Clone(prev)
	doc["connectionState"] = b.str(l.ConnectionState)
	doc["lastActivityTime"] = b.time(l.LastActivityTime.UTC())
	if !b.ok {
		return nil, fmt.Errorf("encode document: live state %+v cannot be written", l)
	}
	return doc, nil
}

// twinDocument is the twin as a client decoding GET /twins/{id} into a
// JSON object sees it: what json.Marshal then json.Unmarshal of its
// twinJSON gives (numbers float64, times RFC 3339 strings, no empty
// tags), built directly because that round trip was nearly all of a
// query's cost. Anything the direct build cannot prove it renders alike
// (a string that is not UTF-8, a number JSON cannot hold or float64
// cannot hold exactly, a time outside years 0-9999, an unexpected type)
// takes the round trip itself.
func twinDocument(t registry.Twin) (map[string]any, error) {
	w := toTwinJSON(t)
	if doc, ok := directTwinDocument(w); ok {
		return doc, nil
	}
	return roundTripDocument(w)
}

// roundTripDocument is the reference: encode, decode into an object.
func roundTripDocument(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode document: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("decode document: %w", err)
	}
	return doc, nil
}

// directTwinDocument builds what roundTripDocument(w) gives; false when it
// cannot vouch for that. Keep it field for field with twinJSON.
func directTwinDocument(w twinJSON) (map[string]any, bool) {
	b := docBuilder{ok: true}
	doc := make(map[string]any, 16)
	doc["deviceId"] = b.str(w.DeviceID)
	doc["etag"] = b.str(w.ETag)
	doc["deviceEtag"] = b.str(w.DeviceETag)
	doc["status"] = b.str(w.Status)
	if w.StatusReason != nil {
		doc["statusReason"] = b.str(*w.StatusReason)
	}
	doc["statusUpdateTime"] = b.time(w.StatusUpdateTime)
	doc["connectionState"] = b.str(w.ConnectionState)
	doc["lastActivityTime"] = b.time(w.LastActivityTime)
	doc["cloudToDeviceMessageCount"] = b.value(w.CloudToDeviceMessageCount)
	doc["authenticationType"] = b.str(w.AuthenticationType)
	doc["x509Thumbprint"] = map[string]any{
		"primaryThumbprint":   b.strPtr(w.X509Thumbprint.PrimaryThumbprint),
		"secondaryThumbprint": b.strPtr(w.X509Thumbprint.SecondaryThumbprint),
	}
	doc["modelId"] = b.str(w.ModelID)
	doc["version"] = b.value(w.Version)
	if len(w.Tags) > 0 { // omitempty
		doc["tags"] = b.value(w.Tags)
	}
	doc["properties"] = map[string]any{
		"desired":  b.value(w.Properties.Desired),
		"reported": b.value(w.Properties.Reported),
	}
	doc["capabilities"] = map[string]any{"iotEdge": w.Capabilities.IotEdge}
	return doc, b.ok
}

// docBuilder converts Go values to what encoding/json decodes their
// encoding into; ok turns false at the first value it cannot vouch for.
type docBuilder struct{ ok bool }

// maxExactInt is 2^53: integers up to it are exact in a float64, so
// float64(n) is what decoding n's text gives.
const maxExactInt = 1 << 53

func (b *docBuilder) str(s string) string {
	// json.Marshal replaces invalid UTF-8.
	if !utf8.ValidString(s) {
		b.ok = false
	}
	return s
}

func (b *docBuilder) strPtr(s *string) any {
	if s == nil {
		return nil
	}
	return b.str(*s)
}

func (b *docBuilder) time(t time.Time) any {
	// time.Time.MarshalJSON is RFC 3339 with nanoseconds and fails
	// outside years 0-9999.
	if y := t.Year(); y < 0 || y > 9999 {
		b.ok = false
		return nil
	}
	return t.Format(time.RFC3339Nano)
}

func (b *docBuilder) value(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return b.str(x)
	case bool:
		return x
	case json.Number:
		f, ok := jsonNumber(x)
		if !ok {
			b.ok = false
		}
		return f
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			b.ok = false
		}
		return x // encoding/json writes the shortest text that reads back the same
	case int:
		return b.integer(int64(x))
	case int64:
		return b.integer(x)
	case map[string]any:
		if x == nil {
			return nil
		}
		m := make(map[string]any, len(x))
		for k, kv := range x {
			m[b.str(k)] = b.value(kv)
		}
		return m
	case []any:
		if x == nil {
			return nil
		}
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = b.value(e)
		}
		return a
	}
	b.ok = false
	return nil
}

// raw is an embedded JSON text as decoding its encoding gives it: json.Marshal
// writes a nil one as null and refuses one that is not JSON (an empty one
// included).
func (b *docBuilder) raw(r json.RawMessage) any {
	if r == nil {
		return nil
	}
	var v any
	if err := json.Unmarshal(r, &v); err != nil {
		b.ok = false
	}
	return v
}

func (b *docBuilder) integer(n int64) any {
	if n > maxExactInt || n < -maxExactInt {
		b.ok = false
	}
	return float64(n)
}

// jsonNumber is what decoding n into an interface gives, if n is a JSON
// number (json.Marshal refuses any other) that float64 holds.
func jsonNumber(n json.Number) (float64, bool) {
	if !isJSONNumber(string(n)) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return f, err == nil
}

// isJSONNumber reports whether s is a number in JSON's grammar (RFC 8259
// section 6): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	digits := func() int {
		start := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// queryError maps a bad query to 400 ArgumentInvalid with the parser's
// message; anything else is a server error.
func queryError(err error) *hubError {
	var syntax *query.SyntaxError
	if errors.As(err, &syntax) {
		return errArgumentInvalid(syntax.Error())
	}
	return errServer("run query: " + err.Error())
}

// maxItemCount reads x-ms-max-item-count. The REST reference makes it a
// hint ("the service may use a different value"), so a value the hub
// cannot use (absent, zero, negative, not a number) lets it pick its own
// page size rather than fail the query; larger values are capped at
// IoT Hub's page maximum.
func maxItemCount(h string) int {
	n, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || n < 1 {
		return maxPageItems
	}
	return min(n, maxPageItems)
}

func formatContinuation(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(continuationPrefix + strconv.Itoa(offset)))
}

// parseContinuation reads a token made by formatContinuation; "" is the
// first page.
func parseContinuation(token string) (int, *hubError) {
	if token == "" {
		return 0, nil
	}
	bad := errArgumentInvalid("The continuation token is invalid.")
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, bad
	}
	s, ok := strings.CutPrefix(string(raw), continuationPrefix)
	if !ok {
		return 0, bad
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, bad
	}
	return n, nil
}
