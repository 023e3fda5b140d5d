package eventhubs

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// Rights are the Event Hubs claims a shared access policy grants on the
// built-in endpoint.
type Rights uint8

const (
	// Listen reads events and the hub's properties.
	Listen Rights = 1 << iota
	// Send publishes events.
	Send
)

func (r Rights) String() string {
	switch r {
	case Listen:
		return "Listen"
	case Send:
		return "Send"
	case Listen | Send:
		return "Listen, Send"
	}
	return "none"
}

// Policy is a shared access policy as the endpoint sees it.
type Policy struct {
	Name string
	// Keys are the policy's keys as connection strings carry them (base64
	// text). Event Hubs clients sign with the key text's bytes, not the
	// decoded key as IoT Hub clients do.
	Keys   []string
	Rights Rights
}

// maxGrants bounds the tokens one connection keeps. Clients put one token
// per audience and replace it when they refresh; a few dozen links per
// connection is a lot.
const maxGrants = 64

// grant is what a validated token allows.
type grant struct {
	path   string // entity path the token covers, lower case, "" for the whole namespace
	rights Rights
	policy string
	expiry time.Time // when the token stops being accepted; zero: never (SASL PLAIN)
}

func (g grant) covers(path string, need Rights, now time.Time) bool {
	if g.rights&need != need || (!g.expiry.IsZero() && now.After(g.expiry)) {
		return false
	}
	path = strings.ToLower(path)
	return g.path == "" || path == g.path || strings.HasPrefix(path, g.path+"/")
}

// connAuth is a connection's authorisation: the tokens it put on $cbs, or
// the policy it authenticated with over SASL PLAIN.
type connAuth struct {
	mu     sync.Mutex
	grants []grant
}

func authOf(c *amqp.Conn) *connAuth {
	a, _ := c.Value().(*connAuth)
	if a == nil {
		return &connAuth{} // cannot happen: Connect sets it
	}
	return a
}

// add records g, replacing a token for the same audience and dropping
// expired ones.
func (a *connAuth) add(g grant, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	kept := a.grants[:0]
	for _, old := range a.grants {
		if old.path != g.path && (old.expiry.IsZero() || !now.After(old.expiry)) {
			kept = append(kept, old)
		}
	}
	a.grants = kept
	if len(a.grants) >= maxGrants {
		return fmt.Errorf("more than %d tokens on one connection", maxGrants)
	}
	a.grants = append(a.grants, g)
	return nil
}

// authorized returns until when the connection may use path with need
// (zero: without end), or ok false.
func (a *connAuth) authorized(path string, need Rights, now time.Time) (until time.Time, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, g := range a.grants {
		if !g.covers(path, need, now) {
			continue
		}
		if g.expiry.IsZero() {
			return time.Time{}, true
		}
		if !ok || g.expiry.After(until) {
			until = g.expiry
		}
		ok = true
	}
	return until, ok
}

// errUnauthorized marks token failures; the message says why.
var errUnauthorized = errors.New("unauthorized")

// validate checks a SAS token as Event Hubs does: a known policy, a
// signature made with one of its keys over sr as sent, not expired (with
// IoT Hub's five minutes of clock skew), and an audience on this
// namespace. Hosts count by name, with or without port: the hub's host
// name, or the one the client opened the connection for (a client that
// dials 127.0.0.1:5672 signs for that).
func (s *Server) validate(token, openHost string) (grant, error) {
	tok, err := sas.Parse(token)
	if err != nil {
		return grant{}, fmt.Errorf("%w: %v", errUnauthorized, err)
	}
	if tok.KeyName == "" {
		return grant{}, fmt.Errorf("%w: the token names no policy (skn)", errUnauthorized)
	}
	p, ok := s.policy(tok.KeyName)
	if !ok {
		return grant{}, fmt.Errorf("%w: no shared access policy %q", errUnauthorized, tok.KeyName)
	}
	signed := false
	for _, k := range p.Keys {
		if k != "" && tok.Verify([]byte(k)) {
			signed = true
		}
	}
	if !signed {
		return grant{}, fmt.Errorf("%w: the signature does not match the keys of policy %q", errUnauthorized, p.Name)
	}
	expiry := tok.Expiry.Add(s.skew())
	if s.now().After(expiry) {
		return grant{}, fmt.Errorf("%w: the token expired at %s", errUnauthorized, tok.Expiry.Format(time.RFC3339))
	}
	if p.Rights == 0 {
		return grant{}, fmt.Errorf("%w: policy %q grants no access to the built-in endpoint (it needs ServiceConnect)", errUnauthorized, p.Name)
	}
	host, path := splitAudience(tok.Resource)
	if !s.ourHost(host, openHost) {
		return grant{}, fmt.Errorf("%w: the token's audience %q is not this namespace (%s)", errUnauthorized, truncate(tok.Resource), s.hostname)
	}
	return grant{path: strings.ToLower(path), rights: p.Rights, policy: p.Name, expiry: expiry}, nil
}

func (s *Server) skew() time.Duration {
	if s.clockSkew == 0 {
		return sas.MaxClockSkew
	}
	return max(s.clockSkew, 0)
}

// splitAudience cuts an audience ("amqps://host:5671/hub/...",
// "sb://host/hub", "host/hub") into its host, without port, and its entity
// path.
func splitAudience(aud string) (host, path string) {
	if _, rest, ok := strings.Cut(aud, "://"); ok {
		aud = rest
	}
	host, path, _ = strings.Cut(aud, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host, strings.Trim(path, "/")
}

func (s *Server) ourHost(host, openHost string) bool {
	if strings.EqualFold(host, s.hostname) {
		return true
	}
	if h, _, err := net.SplitHostPort(openHost); err == nil {
		openHost = h
	}
	return openHost != "" && strings.EqualFold(host, openHost)
}

// openHost is the host name the client named in its open.
func openHost(c *amqp.Conn) string {
	if o := c.PeerOpen(); o != nil {
		return o.Hostname
	}
	return ""
}

// putToken serves the $cbs node: a client puts a token for an audience,
// and later links on the same connection are authorised by it. Replies
// follow Microsoft.Azure.Amqp's AmqpCbsLink, which the .NET client (and
// so the Functions host) checks: 202 Accepted, or 401 with the reason.
func (s *Server) putToken(c *amqp.Conn) amqp.RequestHandler {
	return func(ctx context.Context, req *codec.Message) *codec.Message {
		op, _ := req.ApplicationProperties.Get("operation")
		if op != "put-token" {
			return status(400, fmt.Sprintf("unknown operation %v: $cbs takes put-token", truncateAny(op)))
		}
		typ, _ := req.ApplicationProperties.Get("type")
		if typ != "servicebus.windows.net:sastoken" {
			return status(401, fmt.Sprintf("token type %v is not accepted: the local hub takes shared access signatures (servicebus.windows.net:sastoken)", truncateAny(typ)))
		}
		token, _ := req.Value.(string)
		name, _ := req.ApplicationProperties.Get("name")
		audience, _ := name.(string)
		g, err := s.validate(token, openHost(c))
		if err == nil {
			host, path := splitAudience(audience)
			if !s.ourHost(host, openHost(c)) || !g.covers(path, 0, s.now()) {
				err = fmt.Errorf("%w: the token's audience does not cover %q", errUnauthorized, truncate(audience))
			}
		}
		if err == nil {
			err = authOf(c).add(g, s.now())
		}
		if err != nil {
			s.logger.Debug("eventhubs: put-token refused", "audience", truncate(audience), "err", err)
			return status(401, err.Error())
		}
		return status(202, "Accepted")
	}
}

// status is a request/response reply: status-code must be an AMQP int
// (go-amqp fails on any other type; .NET unboxes it as int) and
// status-description a str.
func status(code int32, desc string) *codec.Message {
	m := &codec.Message{ApplicationProperties: codec.Map{
		{Key: "status-code", Value: code},
		{Key: "status-description", Value: desc},
	}}
	switch code {
	case 401:
		m.ApplicationProperties.Set("error-condition", codec.Symbol("amqp:unauthorized-access"))
	case 404:
		m.ApplicationProperties.Set("error-condition", codec.Symbol("amqp:not-found"))
	case 400:
		m.ApplicationProperties.Set("error-condition", codec.Symbol("com.microsoft:argument-error"))
	}
	return m
}

func truncateAny(v any) string { return truncate(fmt.Sprintf("%q", fmt.Sprint(v))) }

// plainAuth authenticates SASL PLAIN with a policy name and key, as
// amenzhinsky/iothub's Event Hubs client (and Service Bus tools) do; the
// connection may then use every entity the policy's rights allow.
func (s *Server) plainAuth(ctx context.Context, user, pass string) (any, error) {
	p, ok := s.policy(user)
	if ok && p.Rights != 0 {
		for _, k := range p.Keys {
			if k != "" && subtle.ConstantTimeCompare([]byte(k), []byte(pass)) == 1 {
				return p.Name, nil
			}
		}
	}
	return nil, errors.New("unknown policy or wrong key")
}

// connect sets up a new connection's authorisation.
func (s *Server) connect(ctx context.Context, c *amqp.Conn) error {
	a := &connAuth{}
	if info := c.SASL(); info.Mechanism == amqp.MechPlain {
		if name, ok := info.Identity.(string); ok {
			if p, ok := s.policy(name); ok {
				a.grants = append(a.grants, grant{rights: p.Rights, policy: p.Name})
			}
		}
	}
	c.SetValue(a)
	return nil
}

// authorize checks that l's connection may use path with need. On success
// it keeps checking: when the token that allowed it expires and no newer
// one covers it, l is detached with amqp:unauthorized-access, as Event
// Hubs ends links whose token ran out (clients put a fresh token before
// that; a connection string with a fixed SharedAccessSignature cannot).
func (s *Server) authorize(l *amqp.Link, path string, need Rights) error {
	a := authOf(l.Conn())
	until, ok := a.authorized(path, need, s.now())
	if !ok {
		return amqp.Errorf("amqp:unauthorized-access",
			"Unauthorized access. '%s' claim(s) are required to perform this operation. Resource: 'sb://%s/%s'. Put a token for it on $cbs first (a policy with ServiceConnect reads the built-in endpoint).",
			need, s.hostname, path)
	}
	if until.IsZero() {
		return nil
	}
	var (
		mu      sync.Mutex
		t       *time.Timer
		stopped bool // the link ended: arm nothing more
		check   func()
	)
	check = func() {
		next, ok := a.authorized(path, need, s.now())
		mu.Lock()
		defer mu.Unlock()
		switch {
		case stopped:
		case !ok:
			s.logger.Debug("eventhubs: token expired; detaching link", "link", l.Name(), "entity", path)
			l.Detach(amqp.Errorf("amqp:unauthorized-access", "The token for '%s' has expired. Put a new one on $cbs before the old one expires.", path))
		case next.IsZero():
		default:
			t = time.AfterFunc(max(next.Sub(s.now()), time.Millisecond)+time.Millisecond, check)
		}
	}
	mu.Lock()
	t = time.AfterFunc(until.Sub(s.now())+time.Millisecond, check)
	mu.Unlock()
	context.AfterFunc(l.Context(), func() { // no goroutine until the link ends
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	})
	return nil
}
