package eventhubs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
)

// DefaultConsumerGroup exists on every Event Hub.
const DefaultConsumerGroup = "$Default"

// MaxConsumerGroups is IoT Hub's limit per built-in endpoint ($Default
// included).
const MaxConsumerGroups = 20

// consumerGroupName is the rule IoT Hub applies to consumer group names
// on the built-in endpoint: letters, digits, '-', '.' and '_', 1 to 50
// characters, starting and ending with a letter or digit.
var consumerGroupName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,48}[A-Za-z0-9])?$`)

// Options configure a Server.
type Options struct {
	// Events is the built-in endpoint's log. Required.
	Events *eventlog.Log
	// Hostname is the namespace host name clients sign tokens for
	// (Endpoint=sb://<Hostname>/ in connection strings). Required.
	Hostname string
	// Name is the Event Hub-compatible name (EntityPath). Required.
	Name string
	// ConsumerGroups are the groups besides $Default.
	ConsumerGroups []string
	// Policy looks up a shared access policy by name. Required.
	Policy func(name string) (Policy, bool)
	// ClockSkew is how long past its expiry a token is still accepted;
	// zero means IoT Hub's five minutes (sas.MaxClockSkew).
	ClockSkew time.Duration
	Logger    *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// AMQP tunes the AMQP server (limits, timeouts); Attach, Connect and
	// PlainAuth are the Server's own.
	AMQP amqp.Options
}

// Server is the Event Hub-compatible endpoint: the AMQP nodes Event Hubs
// clients use, over the events log.
type Server struct {
	amqp       *amqp.Server
	events     *eventlog.Log
	partitions int
	hostname   string
	name       string
	groups     []string // $Default first
	policy     func(name string) (Policy, bool)
	clockSkew  time.Duration
	logger     *slog.Logger
	now        func() time.Time

	receivers  receivers
	roundRobin atomic.Uint64
	wg         sync.WaitGroup
}

// NewServer checks opts and returns a server; Serve starts it on a
// listener.
func NewServer(opts Options) (*Server, error) {
	switch {
	case opts.Events == nil:
		return nil, errors.New("eventhubs: Options.Events is required")
	case opts.Hostname == "":
		return nil, errors.New("eventhubs: Options.Hostname is required")
	case opts.Name == "":
		return nil, errors.New("eventhubs: Options.Name is required")
	case opts.Policy == nil:
		return nil, errors.New("eventhubs: Options.Policy is required")
	}
	groups, err := ConsumerGroups(opts.ConsumerGroups)
	if err != nil {
		return nil, fmt.Errorf("eventhubs: %w", err)
	}
	s := &Server{
		events:     opts.Events,
		partitions: opts.Events.PartitionCount(),
		hostname:   opts.Hostname,
		name:       opts.Name,
		groups:     groups,
		policy:     opts.Policy,
		clockSkew:  opts.ClockSkew,
		logger:     opts.Logger,
		now:        opts.Now,
		receivers:  receivers{m: map[partKey][]*consumer{}},
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	ao := opts.AMQP
	ao.Attach = s.attach
	ao.Connect = s.connect
	ao.PlainAuth = s.plainAuth
	if ao.Logger == nil {
		ao.Logger = s.logger
	}
	s.amqp = amqp.NewServer(ao)
	return s, nil
}

// ConsumerGroups checks configured group names and returns the hub's
// groups: $Default first, then the others in order, each once (names
// compare case-insensitively, as Event Hubs compares them).
func ConsumerGroups(configured []string) ([]string, error) {
	groups := []string{DefaultConsumerGroup}
	for _, g := range configured {
		if !consumerGroupName.MatchString(g) && !strings.EqualFold(g, DefaultConsumerGroup) {
			return nil, fmt.Errorf("consumer group name %q: use 1 to 50 letters, digits, '-', '.' or '_', starting and ending with a letter or digit", truncate(g))
		}
		dup := false
		for _, have := range groups {
			dup = dup || strings.EqualFold(have, g)
		}
		if !dup {
			groups = append(groups, g)
		}
	}
	if len(groups) > MaxConsumerGroups {
		return nil, fmt.Errorf("%d consumer groups: an IoT Hub's built-in endpoint has at most %d, $Default included", len(groups), MaxConsumerGroups)
	}
	return groups, nil
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = amqp.ErrServerClosed

// Serve serves AMQP on ln (plain, or a tls.Listener) until Close; it
// returns ErrServerClosed then.
func (s *Server) Serve(ln net.Listener) error { return s.amqp.Serve(ln) }

// Close closes every connection (amqp:connection:forced) and waits for
// the links' goroutines.
func (s *Server) Close() error {
	err := s.amqp.Close()
	s.wg.Wait()
	return err
}

// Name is the Event Hub-compatible name.
func (s *Server) Name() string { return s.name }

// ConsumerGroups lists the hub's consumer groups, $Default first.
func (s *Server) ConsumerGroups() []string { return append([]string(nil), s.groups...) }

// attach routes a link to its node. $cbs and $management are
// request/response pairs: the link on which the client sends is served
// here, its reply link is found by ServeRequests. Consumers and
// producers are authorised by the connection's tokens.
func (s *Server) attach(ctx context.Context, l *amqp.Link) (amqp.LinkOptions, error) {
	a, why, ok := s.parseAddress(l.Address())
	if !ok {
		return amqp.LinkOptions{}, amqp.Errorf("amqp:not-found", "%s", why)
	}
	peerSends := l.Role() == frame.RoleReceiver
	switch a.node {
	case nodeCBS, nodeManagement:
		if peerSends {
			handle := s.putToken(l.Conn())
			if a.node == nodeManagement {
				handle = s.manage(l.Conn())
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				_ = amqp.ServeRequests(l.Context(), l, handle)
			}()
		}
		return amqp.LinkOptions{}, nil
	case nodeConsumer:
		if peerSends {
			return amqp.LinkOptions{}, amqp.Errorf("amqp:not-allowed", "'%s' is a consumer group's partition: send to '%s' or '%s/Partitions/<id>'", a.path, s.name, s.name)
		}
		return s.attachConsumer(l, a)
	}
	if !peerSends {
		return amqp.LinkOptions{}, amqp.Errorf("amqp:not-found", "%s Receive from '%s/ConsumerGroups/<group>/Partitions/<id>'.", s.notFound(a.path), s.name)
	}
	return s.attachProducer(l, a)
}
