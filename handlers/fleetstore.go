package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/iothub-reboot/devmgmt/handlers/internal/rollout"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// What the fleet reboot reads and writes in IoT Hub. Every read is a twin
// query (one page is one query against the hub's quota); every write is
// conditional on the twin's etag, so two instances of the app, or a timer
// invocation overlapping a request, never overwrite each other's work.

// maxOpenFleetReboots bounds the fleet reboots open at once: their ids go
// into every selection's query, to exclude their devices. A request over
// the bound is refused (TooManyFleetReboots), since an open fleet reboot
// left out of the list would have its devices taken by another.
// openRecordsRead leaves room for requests that raced past the bound
// together, so that every open one is still read.
const (
	maxOpenFleetReboots = 50
	openRecordsRead     = maxOpenFleetReboots + 10
)

// errRecordChanged: the head twin changed since the record was read.
var errRecordChanged = errors.New("the fleet reboot's record changed since it was read")

// recordRow is a row of a record query.
type recordRow struct {
	DeviceID string          `json:"deviceId"`
	ETag     string          `json:"etag"`
	Record   json.RawMessage `json:"fleetRebootRecord"`
}

// queryRecords reads the records where holds, at most max of them, one
// per fleet reboot: should two heads carry the same fleet reboot (two
// first requests of one Idempotency-Key racing on different devices), the
// one with the smallest device id is the record and the others are
// returned as dups.
func queryRecords(ctx context.Context, hub *iothub.Client, where string, max int) (recs, dups []*fleetRecord, err error) {
	query := "SELECT deviceId, etag, tags." + recordTag + " FROM devices WHERE " + where
	pager := hub.NewQueryPager(query, &iothub.QueryOptions{PageSize: 100})
	byID := map[string]*fleetRecord{}
	for pager.More() && len(byID) < max {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, raw := range page.Items {
			var row recordRow
			if err := json.Unmarshal(raw, &row); err != nil || row.DeviceID == "" {
				continue
			}
			var rec rollout.Record
			if err := json.Unmarshal(row.Record, &rec); err != nil || !validFleetID(rec.ID) {
				continue // not ours, or damaged: never acted upon
			}
			r := &fleetRecord{Record: rec, HeadID: row.DeviceID, ETag: row.ETag}
			if prev, ok := byID[rec.ID]; ok {
				if prev.HeadID < r.HeadID {
					dups = append(dups, r)
					continue
				}
				dups = append(dups, prev)
			}
			byID[rec.ID] = r
		}
	}
	for _, rec := range byID {
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b *fleetRecord) int { return strings.Compare(a.CreatedAt+a.ID, b.CreatedAt+b.ID) })
	return recs, dups, nil
}

// removeRecord deletes a duplicate record from its twin, if the twin has
// not changed since it was read, and with member its membership: a request
// that lost the race for its own key takes back all it wrote, since its
// body, and so its selection, may not be the winner's.
func removeRecord(ctx context.Context, hub *iothub.Client, dup *fleetRecord, member bool) error {
	patch := map[string]any{recordTag: nil}
	if member {
		patch[memberTag] = nil
	}
	etag := azcore.ETag(dup.ETag)
	_, err := hub.UpdateTwin(ctx, dup.HeadID, iothub.TwinPatch{Tags: patch}, &iothub.UpdateTwinOptions{IfMatch: &etag})
	if isHubError(err, iothub.PreconditionFailed) || isHubError(err, iothub.DeviceNotFound) {
		return nil
	}
	return err
}

// findRecord reads fleet reboot id's record; nil when there is none.
func findRecord(ctx context.Context, hub *iothub.Client, id string) (*fleetRecord, error) {
	recs, _, err := queryRecords(ctx, hub, "tags."+recordTag+".id = "+quoteLiteral(id), 1)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[0], nil
}

// openRecords reads the records of the fleet reboots that are not
// finished, and duplicates of them (see queryRecords).
func openRecords(ctx context.Context, hub *iothub.Client) (recs, dups []*fleetRecord, err error) {
	return queryRecords(ctx, hub, "tags."+recordTag+".state IN "+literalList(rollout.Open), openRecordsRead)
}

// save applies change to the record and writes it to the head twin if the
// twin has not changed since it was read (errRecordChanged otherwise). On
// success rec holds what was written and the twin's new etag.
func (rec *fleetRecord) save(ctx context.Context, hub *iothub.Client, change func(*rollout.Record)) error {
	next := rec.Record
	next.Sizes = maps.Clone(rec.Sizes)
	next.Results = maps.Clone(rec.Results)
	change(&next)
	patch, err := recordPatch(next)
	if err != nil {
		return err
	}
	etag := azcore.ETag(rec.ETag)
	resp, err := hub.UpdateTwin(ctx, rec.HeadID, iothub.TwinPatch{Tags: patch}, &iothub.UpdateTwinOptions{IfMatch: &etag})
	if isHubError(err, iothub.PreconditionFailed) {
		return errRecordChanged
	}
	if err != nil {
		return err
	}
	rec.Record = next
	rec.ETag = string(resp.ETag)
	return nil
}

// replacing returns the JSON merge patch (RFC 7396) that turns the object
// old into next: next's members, and null for each member of old that next
// lacks, at every level of nested objects.
func replacing(old, next map[string]any) map[string]any {
	out := make(map[string]any, len(next)+len(old))
	for k := range old {
		if _, ok := next[k]; !ok {
			out[k] = nil
		}
	}
	for k, v := range next {
		nv, isObj := v.(map[string]any)
		ov, wasObj := old[k].(map[string]any)
		if isObj && wasObj {
			out[k] = replacing(ov, nv)
			continue
		}
		out[k] = v
	}
	return out
}

// recordPatch renders the record as a tags patch. A JSON merge patch of
// the whole record: fields are never removed (rollout.Record says why).
func recordPatch(rec rollout.Record) (map[string]any, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return map[string]any{recordTag: m}, nil
}

// memberCondition selects a fleet reboot's devices, or one wave of them.
func memberCondition(id string, wave int) string {
	c := "tags." + memberTag + ".id = " + quoteLiteral(id)
	if wave > 0 {
		c += " AND tags." + memberTag + ".wave = " + strconv.Itoa(wave)
	}
	return c
}

// freeCondition selects devices that belong to none of the fleet
// reboots ids and keep no open fleet reboot's record. The ids are a list
// read moments before; the record is on the device itself, so a head
// written since (by a request racing this one) is never taken from its
// fleet reboot. IS_DEFINED, because a comparison with an undefined
// property is undefined, and so false, even under NOT.
func freeCondition(ids []string) string {
	noOpenRecord := "NOT IS_DEFINED(tags." + recordTag + ".state) OR tags." + recordTag + ".state NIN " + literalList(rollout.Open)
	if len(ids) == 0 {
		return noOpenRecord
	}
	return and(noOpenRecord, "NOT IS_DEFINED(tags."+memberTag+".id) OR tags."+memberTag+".id NIN "+literalList(ids))
}

// busyCondition selects devices that belong to one of the fleet reboots
// ids.
func busyCondition(ids []string) string {
	return "tags." + memberTag + ".id IN " + literalList(ids)
}

// literalList renders values as a query's list of string literals, for IN
// and NIN: ['a', 'b'].
func literalList[S ~string](values []S) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = quoteLiteral(string(v))
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// and joins conditions, each in parentheses, leaving out empty ones; ""
// when all are.
func and(conds ...string) string {
	var parts []string
	for _, c := range conds {
		if c != "" {
			parts = append(parts, "("+c+")")
		}
	}
	return strings.Join(parts, " AND ")
}

// where renders a WHERE clause, or nothing for no condition.
func where(cond string) string {
	if cond == "" {
		return ""
	}
	return " WHERE " + cond
}

// countDevices counts the devices cond selects (one query).
func countDevices(ctx context.Context, hub *iothub.Client, cond string) (int, error) {
	page, err := hub.NewQueryPager("SELECT COUNT() AS n FROM devices"+where(cond), nil).NextPage(ctx)
	if err != nil {
		return 0, err
	}
	if len(page.Items) == 0 {
		return 0, nil
	}
	var row struct{ N float64 }
	if err := json.Unmarshal(page.Items[0], &row); err != nil {
		return 0, fmt.Errorf("count query: %w", err)
	}
	return int(row.N), nil
}

// countByWave counts the devices cond selects by their fleet reboot wave.
func countByWave(ctx context.Context, hub *iothub.Client, cond string) (map[int]int, error) {
	query := "SELECT tags." + memberTag + ".wave AS wave, COUNT() AS n FROM devices" + where(cond) + " GROUP BY tags." + memberTag + ".wave"
	pager := hub.NewQueryPager(query, &iothub.QueryOptions{PageSize: 100})
	out := map[int]int{}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, raw := range page.Items {
			var row struct {
				Wave *float64
				N    float64
			}
			if json.Unmarshal(raw, &row) == nil && row.Wave != nil && *row.Wave >= 1 && *row.Wave <= rollout.MaxWaves {
				out[int(*row.Wave)] += int(row.N)
			}
		}
	}
	return out, nil
}

// isHubError reports whether err is IoT Hub's error code.
func isHubError(err error, code iothub.ErrorCode) bool {
	var respErr *azcore.ResponseError
	return errors.As(err, &respErr) && respErr.ErrorCode == string(code)
}

// hubStatus is the HTTP status of a hub error; 0 for other errors.
func hubStatus(err error) int {
	var respErr *azcore.ResponseError
	if errors.As(err, &respErr) {
		return respErr.StatusCode
	}
	return 0
}

// hubMessage is the message of IoT Hub's error envelope, without the
// "ErrorCode:<code>;" prefix: what the hub says about the caller's query.
func hubMessage(err error) string {
	var respErr *azcore.ResponseError
	if !errors.As(err, &respErr) || respErr.RawResponse == nil {
		return ""
	}
	raw, err := runtime.Payload(respErr.RawResponse) // azcore kept the body
	if err != nil {
		return ""
	}
	var body struct{ Message string }
	if json.Unmarshal(raw, &body) != nil {
		return ""
	}
	msg := body.Message
	if _, rest, ok := strings.Cut(msg, ";"); ok && strings.HasPrefix(msg, "ErrorCode:") {
		msg = rest
	}
	const max = 500
	if len(msg) > max {
		msg = msg[:max] + "…"
	}
	return msg
}

// queryProblem is the problem for a selection the hub refused: its own
// message, as a 400. Other failures are hubProblem's.
func queryProblem(ctx context.Context, err error) problem {
	if hubStatus(err) == http.StatusBadRequest {
		detail := "IoT Hub refused the selection's query"
		if msg := hubMessage(err); msg != "" {
			detail += ": " + msg
		}
		return problem{Status: http.StatusBadRequest, ErrorCode: codeInvalidQuery, Detail: detail + ".",
			Extra: map[string]any{"hubErrorCode": hubErrorCode(err)}}
	}
	return hubProblem(ctx, err, callQuery, "")
}

func hubErrorCode(err error) string {
	var respErr *azcore.ResponseError
	if errors.As(err, &respErr) {
		return respErr.ErrorCode
	}
	return ""
}
