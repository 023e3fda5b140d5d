package hubtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Banner is what "localhub serve" prints on start.
type Banner struct {
	HTTPSURL string            // https://127.0.0.1:PORT
	MQTTAddr string            // 127.0.0.1:PORT
	CAFile   string            // DIR/tls/ca.pem
	Policies map[string]string // policy name → service connection string
}

// ParseBanner reads the banner up to its last line ("Create a device:")
// and leaves the rest of r unread, so that it works on a live pipe.
func ParseBanner(r io.Reader) (Banner, error) {
	b := Banner{Policies: map[string]string{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "Service REST API (HTTPS):"):
			b.HTTPSURL = lastField(trimmed)
		case strings.HasPrefix(trimmed, "Devices (MQTT over TLS):"):
			b.MQTTAddr = lastField(trimmed)
		case strings.HasPrefix(trimmed, "Trust the local CA:"):
			b.CAFile = strings.TrimSpace(strings.TrimPrefix(trimmed, "Trust the local CA:"))
		case strings.HasPrefix(line, "  ") && strings.Contains(trimmed, "SharedAccessKeyName="):
			if name, cs, ok := strings.Cut(trimmed, " "); ok {
				b.Policies[name] = strings.TrimSpace(cs)
			}
		case strings.HasPrefix(trimmed, "Create a device:"):
			return b, b.check()
		}
	}
	if err := sc.Err(); err != nil {
		return b, fmt.Errorf("read banner: %w", err)
	}
	return b, errors.New("banner ended early (did the hub fail to start?)")
}

func (b Banner) check() error {
	if b.HTTPSURL == "" || b.MQTTAddr == "" || b.CAFile == "" || len(b.Policies) == 0 {
		return fmt.Errorf("incomplete banner: %+v", b)
	}
	return nil
}

func lastField(s string) string {
	f := strings.Fields(s)
	return f[len(f)-1]
}
