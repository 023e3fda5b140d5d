package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Sign returns the base64 signature IoT Hub expects for a token with the
// given sr and se, both exactly as they appear in the token.
func Sign(rawResource, rawExpiry string, key []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(rawResource))
	mac.Write([]byte{'\n'})
	mac.Write([]byte(rawExpiry))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify reports whether the token's signature was made with key (the
// base64-decoded key bytes), computed over RawResource + "\n" + RawExpiry.
func (t Token) Verify(key []byte) bool {
	want := Sign(t.RawResource, t.RawExpiry, key)
	return hmac.Equal([]byte(want), []byte(t.Signature))
}

// New mints a token the way the Go SDKs do: sr = url.QueryEscape(resource),
// signature over that encoded sr, skn omitted when keyName is empty.
// key is the base64 text of the key, as in connection strings.
func New(resource, keyName, key string, expiry time.Time) (string, error) {
	if resource == "" {
		return "", errors.New("sas: new token: empty resource")
	}
	secs := expiry.Unix()
	if secs <= 0 {
		return "", fmt.Errorf("sas: new token: expiry %v is not after 1970", expiry)
	}
	keyBytes, err := decodeKey(key)
	if err != nil {
		return "", fmt.Errorf("sas: new token: %w", err)
	}
	sr := url.QueryEscape(resource)
	se := strconv.FormatInt(secs, 10)
	token := scheme + " sr=" + sr + "&sig=" + url.QueryEscape(Sign(sr, se, keyBytes)) + "&se=" + se
	if keyName != "" {
		token += "&skn=" + url.QueryEscape(keyName)
	}
	return token, nil
}

// decodeKey decodes a shared access key as found in connection strings.
func decodeKey(key string) ([]byte, error) {
	if key == "" {
		return nil, errors.New("empty shared access key")
	}
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		// The error text carries only an offset, never key material.
		return nil, fmt.Errorf("shared access key is not base64: %w", err)
	}
	return b, nil
}
