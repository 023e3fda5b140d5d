package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// config is the command line of "localhub serve", with environment
// fallbacks, turned into localhub.Options by options.
type config struct {
	dataDir         string
	hostname        string
	mqttAddr        string
	httpsAddr       string
	amqpAddr        string
	amqpPlainAddr   string
	amqpPlainRemote bool
	bearerToken     string
	partitions      int // 0: the data dir's count, or the default for a new one
	retention       time.Duration
	consumerGroups  []string
	routes          localhub.Routes
	quotas          localhub.Quotas
	logLevel        slog.Level
}

// Defaults for the standalone hub. 8883 is IoT Hub's MQTT port; 443 would
// need privileges, so HTTPS defaults to 8443 (see README for Node.js).
// 5671 and 5672 are the AMQP ports Event Hubs clients dial, with TLS and,
// for UseDevelopmentEmulator=true, without.
const (
	defaultMQTTAddr      = "127.0.0.1:8883"
	defaultHTTPSAddr     = "127.0.0.1:8443"
	defaultAMQPAddr      = "127.0.0.1:5671"
	defaultAMQPPlainAddr = "127.0.0.1:5672"
	defaultDataDir       = ".localhub"
)

// serveFlags are the raw flags of "localhub serve", turned into a config
// by config once parsed.
type serveFlags struct {
	dataDir, hostname, mqttAddr, httpsAddr, bearerToken string
	amqpAddr, amqpPlainAddr, amqpPlainRemote, routes    string
	partitions, retention, throttle, logLevel           string
	consumerGroups                                      listFlag
}

// listFlag is a repeatable flag that also takes comma-separated values
// (as its environment variable does). Given at all, it replaces the
// default list.
type listFlag struct {
	values []string
	set    bool
}

func (l *listFlag) String() string { return strings.Join(l.values, ",") }

func (l *listFlag) Set(v string) error {
	if !l.set {
		l.values, l.set = nil, true
	}
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			l.values = append(l.values, item)
		}
	}
	return nil
}

const dataDirUsage = "`DIR` to keep the registry, keys and TLS material in"

func dataDirFlag(fs *flag.FlagSet) *string {
	return fs.String("data-dir", defaultDataDir, dataDirUsage)
}

// newServeFlags declares serve's flags. Their defaults are fixed values:
// environment fallbacks are applied after parsing (applyEnv).
func newServeFlags(fs *flag.FlagSet) *serveFlags {
	f := &serveFlags{}
	fs.StringVar(&f.dataDir, "data-dir", defaultDataDir, dataDirUsage)
	fs.StringVar(&f.hostname, "hostname", "localhost", "hub host `NAME` used in connection strings and the TLS certificate")
	fs.StringVar(&f.mqttAddr, "mqtt-addr", defaultMQTTAddr, "MQTT over TLS listen `ADDRESS`, or fd:N")
	fs.StringVar(&f.httpsAddr, "https-addr", defaultHTTPSAddr, "service REST API (HTTPS) listen `ADDRESS`, or fd:N")
	fs.StringVar(&f.amqpAddr, "amqp-addr", defaultAMQPAddr, "built-in endpoint (Event Hubs clients, AMQP over TLS) listen `ADDRESS`, or fd:N")
	fs.StringVar(&f.amqpPlainAddr, "amqp-plain-addr", defaultAMQPPlainAddr, "built-in endpoint without TLS, for UseDevelopmentEmulator=true connection strings: a loopback listen `ADDRESS`, fd:N, or off")
	fs.StringVar(&f.amqpPlainRemote, "amqp-plain-remote", "false", "`BOOL`, true to allow --amqp-plain-addr on a non-loopback address (SAS keys and events then cross the network unencrypted)")
	fs.StringVar(&f.bearerToken, "bearer-token", "", "accept this exact bearer `TOKEN` as an Entra ID stand-in with full data-plane rights (off when empty)")
	fs.StringVar(&f.partitions, "partitions", "", "`N` partitions of a new built-in events endpoint, 1 to 32 (4 when not given; a data dir keeps the count it was created with)")
	fs.StringVar(&f.retention, "retention", "24h", "retention `DURATION` of the built-in events endpoint")
	f.consumerGroups = listFlag{values: append([]string(nil), localhub.DefaultConsumerGroups...)}
	fs.Var(&f.consumerGroups, "consumer-group", "consumer `GROUP` of the built-in endpoint besides $Default, repeatable; replaces the default groups, which are infra/'s (--consumer-group= for none)")
	fs.StringVar(&f.routes, "routes", localhub.DefaultRoutes.String(), "`SOURCES` routed to the built-in endpoint, comma-separated: DeviceMessages, TwinChangeEvents, DeviceLifecycleEvents, DeviceConnectionStateEvents; the default routes what infra/ routes")
	fs.StringVar(&f.throttle, "throttle", "off", "throttling `MODE`: off, or s1 to answer 429 past one S1 unit's quotas, for testing callers' throttling handling")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
	return f
}

// loadServeConfig parses serve's command line with its environment
// fallbacks, as "localhub serve" does.
func loadServeConfig(args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("localhub serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := newServeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	fromEnv, err := applyEnv(fs, getenv)
	if err != nil {
		return config{}, err
	}
	return f.config(invocation{fromEnv: fromEnv}.source)
}

// config checks the flags and turns them into a config; source names a
// flag's origin in errors.
func (f *serveFlags) config(source func(flagName string) string) (config, error) {
	c := config{
		dataDir:        f.dataDir,
		hostname:       f.hostname,
		mqttAddr:       f.mqttAddr,
		httpsAddr:      f.httpsAddr,
		amqpAddr:       f.amqpAddr,
		amqpPlainAddr:  f.amqpPlainAddr,
		bearerToken:    f.bearerToken,
		consumerGroups: append([]string{}, f.consumerGroups.values...),
	}
	var err error
	if f.partitions != "" {
		if c.partitions, err = strconv.Atoi(f.partitions); err != nil || c.partitions < 1 || c.partitions > 32 {
			return config{}, fmt.Errorf("%s must be a number from 1 to 32, got %q", source("partitions"), f.partitions)
		}
	}
	if c.amqpPlainRemote, err = strconv.ParseBool(f.amqpPlainRemote); err != nil {
		return config{}, fmt.Errorf("%s must be true or false, got %q", source("amqp-plain-remote"), f.amqpPlainRemote)
	}
	if c.routes, err = localhub.ParseRoutes(f.routes); err != nil {
		return config{}, fmt.Errorf("%s: %w", source("routes"), err)
	}
	if c.retention, err = time.ParseDuration(f.retention); err != nil || c.retention <= 0 {
		return config{}, fmt.Errorf("%s must be a positive duration such as 24h, got %q", source("retention"), f.retention)
	}
	switch f.throttle {
	case "off":
	case "s1":
		c.quotas = localhub.S1Quotas()
	default:
		return config{}, fmt.Errorf("%s must be off or s1, got %q", source("throttle"), f.throttle)
	}
	if err := c.logLevel.UnmarshalText([]byte(f.logLevel)); err != nil {
		return config{}, fmt.Errorf("%s must be debug, info, warn or error, got %q", source("log-level"), f.logLevel)
	}
	if c.hostname == "" {
		return config{}, fmt.Errorf("%s must not be empty", source("hostname"))
	}
	fds := map[int]string{}
	for _, a := range c.listenAddrs() {
		fd, ok, err := parseFD(a.addr)
		if err != nil {
			return config{}, fmt.Errorf("%s: %w", source(a.flag), err)
		}
		if !ok {
			continue
		}
		if other, dup := fds[fd]; dup {
			return config{}, fmt.Errorf("%s and %s both name fd:%d: each listener needs a socket of its own", source(other), source(a.flag), fd)
		}
		fds[fd] = a.flag
	}
	return c, nil
}

// listenAddr is a listen address with the flag that gave it.
type listenAddr struct{ flag, addr string }

func (c config) listenAddrs() []listenAddr {
	return []listenAddr{
		{"mqtt-addr", c.mqttAddr},
		{"https-addr", c.httpsAddr},
		{"amqp-addr", c.amqpAddr},
		{"amqp-plain-addr", c.amqpPlainAddr},
	}
}

// fdPrefix marks a listen address that is a socket inherited from the
// parent process: fd:3 is the first of them, as systemd's socket
// activation and exec.Cmd.ExtraFiles number them.
const fdPrefix = "fd:"

// parseFD reads "fd:N"; ok is false for an ordinary address.
func parseFD(addr string) (fd int, ok bool, err error) {
	num, ok := strings.CutPrefix(addr, fdPrefix)
	if !ok {
		return 0, false, nil
	}
	fd, err = strconv.Atoi(num)
	if err != nil || fd < 3 {
		return 0, false, fmt.Errorf("%q: want fd:N with N, a descriptor number, at least 3 (0 to 2 are stdin, stdout and stderr)", addr)
	}
	return fd, true, nil
}

// inheritedListeners are the sockets the fd:N addresses name, by flag.
type inheritedListeners struct{ mqtt, https, amqp, amqpPlain net.Listener }

// inherit takes over the sockets the fd:N addresses name. On error, those
// already taken are closed.
func (c config) inherit() (inheritedListeners, error) {
	var lns inheritedListeners
	dst := map[string]*net.Listener{"mqtt-addr": &lns.mqtt, "https-addr": &lns.https, "amqp-addr": &lns.amqp, "amqp-plain-addr": &lns.amqpPlain}
	for _, a := range c.listenAddrs() {
		fd, ok, err := parseFD(a.addr)
		if err == nil && ok {
			*dst[a.flag], err = inheritedListener(fd)
		}
		if err != nil {
			lns.close()
			return inheritedListeners{}, fmt.Errorf("--%s: %w", a.flag, err)
		}
	}
	return lns, nil
}

func (l inheritedListeners) close() {
	for _, ln := range []net.Listener{l.mqtt, l.https, l.amqp, l.amqpPlain} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// options are the hub's options; lns are the sockets inherit took over
// (zero when no address is fd:N).
func (c config) options(logger *slog.Logger, lns inheritedListeners) localhub.Options {
	return localhub.Options{
		MQTTListener:         lns.mqtt,
		HTTPSListener:        lns.https,
		AMQPListener:         lns.amqp,
		AMQPPlainListener:    lns.amqpPlain,
		DataDir:              c.dataDir,
		Hostname:             c.hostname,
		MQTTAddr:             c.mqttAddr,
		HTTPSAddr:            c.httpsAddr,
		AMQPAddr:             c.amqpAddr,
		AMQPPlainAddr:        c.amqpPlainAddr,
		AllowRemotePlainAMQP: c.amqpPlainRemote,
		BearerToken:          c.bearerToken,
		Quotas:               c.quotas,
		Partitions:           c.partitions,
		Retention:            c.retention,
		ConsumerGroups:       c.consumerGroups,
		Routes:               c.routes,
		Logger:               logger,
	}
}
