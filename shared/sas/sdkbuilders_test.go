package sas_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// These builders reproduce, byte for byte, how real clients encode tokens, so
// the tests prove the parser accepts what goes over the wire. They are
// written from the encodings documented in iothub-protocols.md §1.1.

// hmacB64 is the signature every SDK computes: base64(HMAC-SHA256(key, s)).
func hmacB64(key []byte, s string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// goToken builds a token as amenzhinsky/iothub v0.9.1 does: sr is
// url.QueryEscape(resource), the signature covers that escaped sr, fields in
// the order sr, sig, se[, skn], skn omitted for device keys.
func goToken(resource, policy string, key []byte, se int64) string {
	sr := url.QueryEscape(resource)
	exp := strconv.FormatInt(se, 10)
	s := "SharedAccessSignature sr=" + sr +
		"&sig=" + url.QueryEscape(hmacB64(key, sr+"\n"+exp)) +
		"&se=" + url.QueryEscape(exp)
	if policy != "" {
		s += "&skn=" + url.QueryEscape(policy)
	}
	return s
}

// goLegacyToken builds a token as older amenzhinsky releases
// (common.Credentials.SAS) do: the same encoding, but "&skn=" is always
// appended, empty for device keys.
func goLegacyToken(resource, policy string, key []byte, se int64) string {
	sr := url.QueryEscape(resource)
	exp := strconv.FormatInt(se, 10)
	return "SharedAccessSignature sr=" + sr +
		"&sig=" + url.QueryEscape(hmacB64(key, sr+"\n"+exp)) +
		"&se=" + url.QueryEscape(exp) +
		"&skn=" + url.QueryEscape(policy)
}

// nodeServiceToken builds a token as the Node service SDK (azure-iothub)
// does: sr is the raw host name, not encoded; field order sr, sig, skn, se.
func nodeServiceToken(host, policy string, key []byte, se int64) string {
	return nodeToken(host, policy, key, se)
}

// nodeDeviceToken builds a token as the Node device SDK does:
// sr = encodeUriComponentStrict(host + "/devices/" + deviceID), no skn.
func nodeDeviceToken(host, deviceID string, key []byte, se int64) string {
	return nodeToken(encodeURIComponentStrict(host+"/devices/"+deviceID), "", key, se)
}

// nodeToken mirrors azure-iot-common SharedAccessSignature.create + toString:
// sr used as given, sig and skn strictly encoded, fields sr, sig, skn, se.
func nodeToken(sr, policy string, key []byte, se int64) string {
	exp := strconv.FormatInt(se, 10)
	fields := []string{
		"sr=" + sr,
		"sig=" + encodeURIComponentStrict(hmacB64(key, sr+"\n"+exp)),
	}
	if policy != "" {
		fields = append(fields, "skn="+encodeURIComponentStrict(policy))
	}
	fields = append(fields, "se="+exp)
	return "SharedAccessSignature " + strings.Join(fields, "&")
}

// encodeURIComponentStrict is JavaScript's encodeURIComponent followed by
// the SDK's extra escaping of !'()*. JavaScript writes upper-case hex, but
// the SDK's replacement uses charCode.toString(16), so '*' becomes "%2a":
// a lower-case escape a re-encoding server would never reproduce.
func encodeURIComponentStrict(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case strings.IndexByte("!'()*", c) >= 0:
			fmt.Fprintf(&b, "%%%x", c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
