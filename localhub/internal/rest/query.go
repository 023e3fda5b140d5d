package rest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

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
// returns them, so queries address the wire's field names.
func twinDocuments(reg *registry.Store) ([]map[string]any, error) {
	twins, err := reg.Twins()
	if err != nil {
		return nil, err
	}
	wire := make([]twinJSON, len(twins))
	for i, tw := range twins {
		wire[i] = toTwinJSON(tw)
	}
	return asDocuments(wire)
}

// asDocuments converts v (a slice) into JSON objects as a client would see
// them, so queries address the wire field names.
func asDocuments(v any) ([]map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode documents: %w", err)
	}
	var docs []map[string]any
	if err := json.Unmarshal(b, &docs); err != nil {
		return nil, fmt.Errorf("decode documents: %w", err)
	}
	return docs, nil
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
