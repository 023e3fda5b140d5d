package handlers

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): a retried
// RebootDevice request must never reboot a device twice. The app keeps no
// state, so the record of a request lives in the device twin:
//
//   - the key and the device id determine the requestId (a name-based
//     UUID), so a retry names the same reboot;
//   - before invoking, the app reads the twin: a claim for that requestId
//     in tags.rebootRequests, or the device reporting it as its
//     iothubDM.reboot.requestId, means the request was already made, and
//     the app answers from that record without invoking anything;
//   - otherwise it writes the claim with If-Match on the twin's etag
//     (two concurrent retries cannot both win), then invokes the method.
//
// Tags, because devices never see them (a desired property would notify
// the device). The claim is withdrawn when the hub or the device
// certainly did not start a reboot (device offline, throttled, refused),
// so that a later retry can invoke again; after a timeout or a lost answer
// the outcome is unknown and the claim stays. The guarantee is at most
// once: should the app stop between the claim and the call, a retry finds
// the claim and RebootStatus reports the reboot timed out.
const (
	headerIdempotencyKey     = "Idempotency-Key"
	headerIdempotentReplayed = "Idempotent-Replayed"
	maxIdempotencyKeyLength  = 255
	// claimTag is the twin tag holding the claims: requestId → requestedAt.
	claimTag = "rebootRequests"
	// maxClaims and claimRetention bound the claims kept per device: far
	// more, and far longer, than any caller's retries need (a Logic App's
	// exponential policy retries for minutes, at most an hour per retry).
	maxClaims      = 16
	claimRetention = 24 * time.Hour
	// maxClaimAttempts bounds the read-claim cycles lost to concurrent
	// twin updates (412 PreconditionFailed).
	maxClaimAttempts = 3
	// releaseTimeout bounds withdrawing a claim, which runs even when the
	// caller has gone.
	releaseTimeout = 10 * time.Second
)

// requestIDNamespace is the UUID namespace of key-derived request ids.
var requestIDNamespace = [16]byte{0x3c, 0x1e, 0x6b, 0x2a, 0x94, 0x57, 0x4f, 0x0d, 0x8a, 0x61, 0x27, 0xc5, 0x0e, 0xb3, 0x49, 0xd8}

// parseIdempotencyKey reads the Idempotency-Key header: the draft's
// structured-field string ("…"), or, as most clients send it, the bare
// value. ok is false when there is no header.
func parseIdempotencyKey(r *http.Request) (key string, ok bool, p *problem) {
	values := r.Header.Values(headerIdempotencyKey)
	if len(values) == 0 {
		return "", false, nil
	}
	bad := func(msg string) (string, bool, *problem) {
		prob := badRequest(codeInvalidArgument, msg)
		return "", true, &prob
	}
	if len(values) > 1 {
		return bad("Send one Idempotency-Key header.")
	}
	key = strings.TrimSpace(values[0])
	if len(key) >= 2 && key[0] == '"' && key[len(key)-1] == '"' {
		key = key[1 : len(key)-1]
	}
	if key == "" || len(key) > maxIdempotencyKeyLength || strings.ContainsFunc(key, func(c rune) bool { return c < ' ' || c > '~' || c == '"' || c == '\\' }) {
		return bad(fmt.Sprintf("Idempotency-Key must be 1..%d printable ASCII characters without quotes or backslashes, e.g. the Logic App's run id.", maxIdempotencyKeyLength))
	}
	return key, true, nil
}

// requestIDForKey derives the request id of the reboot that key names on
// deviceID: a name-based (version 5) UUID, so the same key on the same
// device is the same reboot, and on another device another one.
func requestIDForKey(deviceID, key string) string {
	return nameUUID(requestIDNamespace, deviceID+"\x00"+key)
}

// nameUUID is the name-based (version 5, SHA-1) UUID of name in namespace
// (RFC 9562 §5.5).
func nameUUID(namespace [16]byte, name string) string {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write([]byte(name))
	var b [16]byte
	copy(b[:], h.Sum(nil))
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// errTwinBusy: the twin changed under every claim attempt.
var errTwinBusy = errors.New("the device twin changed during every attempt to record the request")

// claimRequest records requestID on deviceID's twin unless the twin shows
// it was already made. made reports a request made before; requestedAt is
// then the time it was made (as recorded), else now, the time claimed.
func claimRequest(ctx context.Context, hub *iothub.Client, deviceID, requestID string, now time.Time) (requestedAt time.Time, made bool, call hubCall, err error) {
	for range maxClaimAttempts {
		twin, err := hub.GetTwin(ctx, deviceID, nil)
		if err != nil {
			return time.Time{}, false, callReadTwin, err
		}
		if at, ok := priorRequest(twin.Twin, requestID, now); ok {
			return at, true, callReadTwin, nil
		}
		etag := twin.ETag
		_, err = hub.UpdateTwin(ctx, deviceID, iothub.TwinPatch{Tags: claimPatch(twin.Tags, requestID, now)}, &iothub.UpdateTwinOptions{IfMatch: &etag})
		if err == nil {
			return now, false, callClaim, nil
		}
		var respErr *azcore.ResponseError
		if !errors.As(err, &respErr) || respErr.ErrorCode != string(iothub.PreconditionFailed) {
			return time.Time{}, false, callClaim, err
		}
	}
	return time.Time{}, false, callClaim, errTwinBusy
}

// priorRequest reports whether the twin shows requestID was already made:
// claimed in its tags, or reported by the device (whose claim may have
// been pruned). The time is the claim's, else when the hub recorded the
// device's report, else now.
func priorRequest(twin iothub.Twin, requestID string, now time.Time) (time.Time, bool) {
	if s, ok := object(twin.Tags[claimTag])[requestID].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, true
		}
		return now, true
	}
	if rebootReportFromTwin(twin.Properties.Reported).RequestID != requestID {
		return time.Time{}, false
	}
	meta := object(object(object(object(twin.Properties.Reported["$metadata"])["iothubDM"])["reboot"])["requestId"])
	if t, ok := parseDeviceTime(str(meta["$lastUpdated"])); ok {
		return t.Truncate(time.Millisecond), true
	}
	return now, true
}

// claimPatch is the tags patch adding requestID and deleting (null) the
// claims past claimRetention and the oldest beyond maxClaims.
func claimPatch(tags map[string]any, requestID string, now time.Time) map[string]any {
	type claim struct {
		id string
		at time.Time
	}
	var claims []claim
	patch := map[string]any{requestID: now.UTC().Format(requestedAtLayout)}
	for id, v := range object(tags[claimTag]) {
		t, err := time.Parse(time.RFC3339Nano, str(v))
		if err != nil || now.Sub(t) > claimRetention {
			patch[id] = nil
			continue
		}
		claims = append(claims, claim{id, t})
	}
	slices.SortFunc(claims, func(a, b claim) int { return a.at.Compare(b.at) })
	for len(claims) >= maxClaims {
		patch[claims[0].id] = nil
		claims = claims[1:]
	}
	return map[string]any{claimTag: patch}
}

// releaseClaim withdraws requestID's claim after the hub or the device
// certainly did not start the reboot, so a retry with the same key can
// invoke again. It runs even when the caller has gone.
func releaseClaim(ctx context.Context, hub *iothub.Client, deviceID, requestID string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	_, err := hub.UpdateTwin(ctx, deviceID, iothub.TwinPatch{Tags: map[string]any{claimTag: map[string]any{requestID: nil}}}, nil)
	return err
}

// notDelivered reports whether a failed reboot call certainly reached no
// device: the hub refused it (device offline or unknown, throttled,
// unauthorized, a bad argument). After a timeout, a lost connection or an
// unreadable device answer the outcome is unknown.
func notDelivered(err error) bool {
	var respErr *azcore.ResponseError
	if !errors.As(err, &respErr) {
		return false
	}
	if respErr.ErrorCode == string(iothub.GatewayTimeout) || respErr.StatusCode == http.StatusGatewayTimeout {
		return false
	}
	return respErr.StatusCode >= 400 && respErr.StatusCode < 500
}
