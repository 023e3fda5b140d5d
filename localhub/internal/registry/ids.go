package registry

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"math/big"
	"strconv"
	"strings"
)

// etagMatches reports whether an If-Match header value admits etag. IoT Hub
// clients send nothing, *, "*" (Node quotes the star), "<etag>" or a bare
// <etag>.
func etagMatches(ifMatch, etag string) bool {
	m := strings.TrimSpace(ifMatch)
	if len(m) >= 2 && m[0] == '"' && m[len(m)-1] == '"' {
		m = m[1 : len(m)-1]
	}
	return m == "" || m == "*" || m == etag
}

// deviceETag is how IoT Hub spells device etags: base64 of a decimal
// counter ("MzE4NzUxOTU1" is "318751955").
func deviceETag(n uint64) string {
	return base64.StdEncoding.EncodeToString(strconv.AppendUint(nil, n, 10))
}

// twinETag is how IoT Hub spells twin etags: base64 of an 8-byte big-endian
// counter ("AAAAAAAAAAE=" is 1).
func twinETag(n uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return base64.StdEncoding.EncodeToString(b[:])
}

// Key sizes IoT Hub accepts for symmetric keys, decoded.
const (
	minSymKeyBytes = 16
	maxSymKeyBytes = 64
	newKeyBytes    = 32
)

func newKey() string {
	b := make([]byte, newKeyBytes)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func validKey(k string) bool {
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) >= minSymKeyBytes && len(b) <= maxSymKeyBytes
}

// newGenerationID makes an 18-digit decimal like IoT Hub's
// ("637546501104263193").
func newGenerationID() string {
	return strconv.FormatUint(100_000_000_000_000_000+randomUint64(900_000_000_000_000_000), 10)
}

// randomUint64 is uniform in [0, n).
func randomUint64(n uint64) uint64 {
	v, err := rand.Int(rand.Reader, new(big.Int).SetUint64(n))
	if err != nil {
		panic("registry: crypto/rand failed: " + err.Error())
	}
	return v.Uint64()
}
