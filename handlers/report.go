package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/iothub-reboot/devmgmt/shared/deviceid"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// Report paging: IoT Hub returns at most 100 twins per query page.
const (
	defaultReportPageSize = 100
	maxReportPageSize     = 100
	maxStatusFilterLength = 128
)

// reportItem is one device in RebootReport.
type reportItem struct {
	DeviceID        string `json:"deviceId"`
	LastReboot      string `json:"lastReboot,omitempty"`
	Status          string `json:"status,omitempty"`
	RequestID       string `json:"requestId,omitempty"`
	ConnectionState string `json:"connectionState,omitempty"`
	// ReportedAt is when the hub last recorded a change to the device's
	// reboot section (the hub's clock).
	ReportedAt string `json:"reportedAt,omitempty"`
}

// reportResponse is RebootReport's body; value/nextLink follow the Azure
// REST paging convention, which Logic Apps' pagination setting follows.
type reportResponse struct {
	Value             []reportItem `json:"value"`
	ContinuationToken string       `json:"continuationToken,omitempty"`
	NextLink          string       `json:"nextLink,omitempty"`
}

// reportFilter is RebootReport's validated query.
type reportFilter struct {
	Since        time.Time // zero: no lower bound
	Prefix       string
	Status       string
	PageSize     int
	Continuation string
}

// handleRebootReport serves GET /api/reboots?since=&deviceIdPrefix=
// &status=&pageSize=&continuationToken=: the devices whose twins report a
// reboot section, in the hub's order, one hub query page per call. A page
// may hold fewer items than pageSize (the exact since bound is applied
// here); keep following continuationToken until it is absent.
func handleRebootReport(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, p := parseReportFilter(r.URL.Query())
		if p != nil {
			writeProblem(w, r, *p)
			return
		}
		pager := d.Hub.NewQueryPager(f.query(), &iothub.QueryOptions{PageSize: int32(f.PageSize), ContinuationToken: f.Continuation})
		page, err := pager.NextPage(r.Context())
		if err != nil {
			if r.Context().Err() != nil {
				return
			}
			d.Logger.LogAttrs(r.Context(), slog.LevelWarn, "reboot report query failed", hubErrorAttrs(err)...)
			if f.Continuation != "" && isBadRequest(err) {
				writeProblem(w, r, badRequest(codeInvalidContinuation, "The IoT Hub rejected continuationToken; start again without it."))
				return
			}
			writeProblem(w, r, hubProblem(r.Context(), err, callQuery, ""))
			return
		}
		body := reportResponse{Value: make([]reportItem, 0, len(page.Items))}
		for _, raw := range page.Items {
			if item, ok := reportItemFromTwin(raw); ok && f.keeps(item) {
				body.Value = append(body.Value, item)
			}
		}
		if page.ContinuationToken != nil && *page.ContinuationToken != "" {
			body.ContinuationToken = *page.ContinuationToken
			body.NextLink = nextLink(r, body.ContinuationToken)
		}
		writeJSON(w, http.StatusOK, body)
	})
}

func parseReportFilter(q url.Values) (reportFilter, *problem) {
	f := reportFilter{
		Prefix:       q.Get("deviceIdPrefix"),
		Status:       q.Get("status"),
		PageSize:     defaultReportPageSize,
		Continuation: q.Get("continuationToken"),
	}
	bad := func(msg string) (reportFilter, *problem) {
		p := badRequest(codeInvalidArgument, msg)
		return reportFilter{}, &p
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return bad("since must be an RFC 3339 time such as 2025-01-31T08:00:00Z.")
		}
		f.Since = t
	}
	if f.Prefix != "" {
		if err := deviceid.Validate(f.Prefix); err != nil {
			return bad("deviceIdPrefix: " + err.Error() + ".")
		}
	}
	if len(f.Status) > maxStatusFilterLength || strings.ContainsFunc(f.Status, func(r rune) bool { return r < ' ' }) {
		return bad(fmt.Sprintf("status must be at most %d printable characters.", maxStatusFilterLength))
	}
	if s := q.Get("pageSize"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxReportPageSize {
			return bad(fmt.Sprintf("pageSize must be a whole number within 1..%d.", maxReportPageSize))
		}
		f.PageSize = n
	}
	return f, nil
}

// query builds the twin query. It filters on the hub as far as IoT Hub's
// query language allows — twin queries support IS_DEFINED but no string
// functions, so the id prefix is a range — and leaves the exact time
// comparison to keeps: devices report lastReboot in varied ISO 8601 forms
// that do not compare correctly as strings. The since bound on the hub is a
// date one day earlier, which no ISO 8601 rendering of a later instant
// (any offset, any precision) compares below.
func (f reportFilter) query() string {
	var b strings.Builder
	b.WriteString("SELECT * FROM devices WHERE IS_DEFINED(properties.reported.iothubDM.reboot)")
	if f.Prefix != "" {
		// Every id starting with the prefix sorts between the prefix and
		// the prefix followed by U+FFFF.
		lower := quoteLiteral(f.Prefix)
		upper := lower[:len(lower)-1] + `\uffff'`
		fmt.Fprintf(&b, " AND deviceId >= %s AND deviceId < %s", lower, upper)
	}
	if f.Status != "" {
		fmt.Fprintf(&b, " AND properties.reported.iothubDM.reboot.status = %s", quoteLiteral(f.Status))
	}
	if !f.Since.IsZero() {
		day := f.Since.UTC().AddDate(0, 0, -1).Format(time.DateOnly)
		fmt.Fprintf(&b, " AND properties.reported.iothubDM.reboot.lastReboot >= %s", quoteLiteral(day))
	}
	return b.String()
}

// quoteLiteral renders s as a single-quoted query string literal.
func quoteLiteral(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch {
		case r == '\'' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < ' ' || r > '~':
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, `\u%04x`, u)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// keeps applies what the hub query could not: the exact since bound and,
// defensively, the prefix (should a hub order ids differently).
func (f reportFilter) keeps(item reportItem) bool {
	if !strings.HasPrefix(item.DeviceID, f.Prefix) {
		return false
	}
	if f.Status != "" && item.Status != f.Status {
		return false
	}
	if f.Since.IsZero() {
		return true
	}
	t, ok := parseDeviceTime(item.LastReboot)
	return ok && !t.Before(f.Since)
}

// reportTwin is the part of a twin the report reads.
type reportTwin struct {
	DeviceID        string `json:"deviceId"`
	ConnectionState string `json:"connectionState"`
	Properties      struct {
		Reported map[string]any `json:"reported"`
	} `json:"properties"`
}

func reportItemFromTwin(raw json.RawMessage) (reportItem, bool) {
	var t reportTwin
	if err := json.Unmarshal(raw, &t); err != nil || t.DeviceID == "" {
		return reportItem{}, false
	}
	rep := rebootReportFromTwin(t.Properties.Reported)
	item := reportItem{
		DeviceID:        t.DeviceID,
		LastReboot:      rep.LastReboot,
		Status:          rep.Status,
		RequestID:       rep.RequestID,
		ConnectionState: t.ConnectionState,
	}
	meta := object(object(object(t.Properties.Reported["$metadata"])["iothubDM"])["reboot"])
	item.ReportedAt = str(meta["$lastUpdated"])
	return item, true
}

// nextLink is this request's URL with continuationToken replaced.
func nextLink(r *http.Request, token string) string {
	q := r.URL.Query()
	q.Set("continuationToken", token)
	return publicBaseURL(r) + r.URL.Path + "?" + q.Encode()
}

func isBadRequest(err error) bool {
	var respErr *azcore.ResponseError
	return errors.As(err, &respErr) && respErr.StatusCode == http.StatusBadRequest
}
