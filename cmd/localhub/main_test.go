package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// The test binary doubles as the localhub command, so tests can run it as
// a separate process (and kill it) without a separate build step.
func TestMain(m *testing.M) {
	if os.Getenv("LOCALHUB_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// randomPorts are the flags that put every listener on a random loopback
// port, clear of a hub on the default ports (make run) and of other tests.
var randomPorts = []string{"--mqtt-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--amqp-addr", "127.0.0.1:0", "--amqp-plain-addr", "127.0.0.1:0"}

// hubProcess is localhub running as a child process.
type hubProcess struct {
	cmd      *exec.Cmd
	httpsURL string
	done     chan error
}

// startHubProcess runs "localhub serve" on random loopback ports and waits
// for its banner, which is printed only once both listeners are up.
func startHubProcess(t *testing.T, dataDir string) *hubProcess {
	t.Helper()
	return startHubProcessWith(t, dataDir, randomPorts, nil)
}

// startHubProcessWith runs "localhub serve" with the listen flags given,
// passing extraFiles as file descriptors 3 onwards.
func startHubProcessWith(t *testing.T, dataDir string, listenFlags []string, extraFiles []*os.File) *hubProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--data-dir", dataDir, "--log-level", "warn"}, listenFlags...)...)
	cmd.Env = append(os.Environ(), "LOCALHUB_TEST_RUN_MAIN=1")
	cmd.ExtraFiles = extraFiles
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	p := &hubProcess{cmd: cmd, done: make(chan error, 1)}

	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if _, url, ok := strings.Cut(lines.Text(), "Service REST API (HTTPS):"); ok {
			p.httpsURL = strings.TrimSpace(url)
			break
		}
	}
	require.NotEmpty(t, p.httpsURL, "hub printed no HTTPS URL")
	go func() {
		io.Copy(io.Discard, stdout)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *hubProcess) client(t *testing.T, dataDir, policy string) *iothub.Client {
	t.Helper()
	cs, err := localhub.ServiceConnectionStringIn(t.Context(), dataDir, policy)
	require.NoError(t, err)
	ca, err := os.ReadFile(filepath.Join(dataDir, "tls", "ca.pem"))
	require.NoError(t, err)
	c, err := iothub.NewClientFromConnectionString(cs, &iothub.ClientOptions{
		Endpoint:      p.httpsURL,
		ClientOptions: azcore.ClientOptions{Transport: trustingClient(t, ca)},
	})
	require.NoError(t, err)
	return c
}

// TestKill9KeepsAcknowledgedWrites kills the hub with SIGKILL right after
// writes it acknowledged and checks a new hub on the same data dir has them.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	dataDir := t.TempDir()
	ctx := t.Context()

	first := startHubProcess(t, dataDir)
	devCS, err := localhub.CreateDeviceIn(ctx, dataDir, "dev-durable")
	require.NoError(t, err)
	client := first.client(t, dataDir, "iothubowner")
	_, err = client.UpdateTwin(ctx, "dev-durable", iothub.TwinPatch{
		Tags:    map[string]any{"site": "plant-7"},
		Desired: map[string]any{"interval": 5.0},
	}, nil)
	require.NoError(t, err)
	before, err := client.GetTwin(ctx, "dev-durable", nil)
	require.NoError(t, err)

	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	require.Error(t, <-first.done, "the hub should have died from SIGKILL")
	first.done <- nil // let the cleanup's receive return

	second := startHubProcess(t, dataDir)
	client = second.client(t, dataDir, "iothubowner")
	after, err := client.GetTwin(ctx, "dev-durable", nil)
	require.NoError(t, err)
	require.Equal(t, "plant-7", after.Twin.Tags["site"])
	require.Equal(t, 5.0, after.Twin.Properties.Desired["interval"])
	require.Equal(t, before.Twin.ETag, after.Twin.ETag)
	require.Equal(t, before.Twin.Version, after.Twin.Version)

	again, err := localhub.ServiceConnectionStringIn(ctx, dataDir, "iothubowner")
	require.NoError(t, err)
	dev, err := client.GetDevice(ctx, "dev-durable", nil)
	require.NoError(t, err)
	parsed, err := sas.ParseConnectionString(devCS)
	require.NoError(t, err)
	require.Equal(t, parsed.SharedAccessKey, dev.Device.Authentication.SymmetricKey.PrimaryKey, "device keys survive")
	require.NotEmpty(t, again)
}

// TestAdminCommandsWithoutRunningHub uses the subcommands on a data dir
// whose hub has stopped: they open the registry directly.
func TestAdminCommandsWithoutRunningHub(t *testing.T) {
	dataDir := t.TempDir()
	hub, err := localhub.Start(t.Context(), localhub.Options{DataDir: dataDir, Hostname: "hub.example.test"})
	require.NoError(t, err)
	want, err := hub.ServiceConnectionString("serviceAndRegistryRead")
	require.NoError(t, err)
	require.NoError(t, hub.Close())

	var out strings.Builder
	err = run(t.Context(), []string{"connection-string", "--policy", "serviceAndRegistryRead", "--data-dir", dataDir}, noEnv, &out, io.Discard)
	require.NoError(t, err)
	require.Equal(t, want+"\n", out.String())

	out.Reset()
	err = run(t.Context(), []string{"device", "create", "dev-1", "--data-dir", dataDir}, noEnv, &out, io.Discard)
	require.NoError(t, err)
	cs, err := sas.ParseConnectionString(strings.TrimSpace(out.String()))
	require.NoError(t, err)
	require.Equal(t, "hub.example.test", cs.HostName)
	require.Equal(t, "dev-1", cs.DeviceID)
	require.NotEmpty(t, cs.SharedAccessKey)

	err = run(t.Context(), []string{"device", "create", "dev-1", "--data-dir", dataDir}, noEnv, io.Discard, io.Discard)
	require.Error(t, err, "a duplicate device is refused")
	err = run(t.Context(), []string{"connection-string", "--policy", "nope", "--data-dir", dataDir}, noEnv, io.Discard, io.Discard)
	require.ErrorContains(t, err, `no shared access policy "nope"`)
}

// TestAdminCommandsAgainstRunningHub creates a device while a hub holds
// the data dir: the subcommand goes through the hub's REST API.
func TestAdminCommandsAgainstRunningHub(t *testing.T) {
	dataDir := t.TempDir()
	p := startHubProcess(t, dataDir)

	var out strings.Builder
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, run(ctx, []string{"device", "create", "--data-dir", dataDir, "dev-live"}, noEnv, &out, io.Discard))
	cs, err := sas.ParseConnectionString(strings.TrimSpace(out.String()))
	require.NoError(t, err)

	dev, err := p.client(t, dataDir, "registryRead").GetDevice(ctx, "dev-live", nil)
	require.NoError(t, err)
	require.Equal(t, cs.SharedAccessKey, dev.Device.Authentication.SymmetricKey.PrimaryKey)
}

func TestServeConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr string
	}{
		{
			name: "defaults",
			want: defaults(func(c *config) {}),
		},
		{
			name: "flags win over environment",
			args: []string{"--hostname", "hub.local", "--partitions", "8", "--https-addr", ":9443"},
			env:  map[string]string{"LOCALHUB_HOSTNAME": "env.local", "LOCALHUB_DATA_DIR": "/tmp/x", "LOCALHUB_RETENTION": "1h", "LOCALHUB_BEARER_TOKEN": "tok", "LOCALHUB_PARTITIONS": "2"},
			want: defaults(func(c *config) {
				c.dataDir, c.hostname, c.httpsAddr, c.bearerToken, c.partitions, c.retention = "/tmp/x", "hub.local", ":9443", "tok", 8, time.Hour
			}),
		},
		{
			name: "every environment fallback",
			env: map[string]string{
				"LOCALHUB_DATA_DIR": "/d", "LOCALHUB_HOSTNAME": "h.test", "LOCALHUB_MQTT_ADDR": ":1", "LOCALHUB_HTTPS_ADDR": ":2",
				"LOCALHUB_BEARER_TOKEN": "t", "LOCALHUB_PARTITIONS": "3", "LOCALHUB_RETENTION": "2h", "LOCALHUB_THROTTLE": "s1", "LOCALHUB_LOG_LEVEL": "warn",
				"LOCALHUB_AMQP_ADDR": ":3", "LOCALHUB_AMQP_PLAIN_ADDR": "off", "LOCALHUB_AMQP_PLAIN_REMOTE": "true",
				"LOCALHUB_CONSUMER_GROUPS": "a, b", "LOCALHUB_ROUTES": "TwinChangeEvents,DeviceLifecycleEvents",
			},
			want: config{dataDir: "/d", hostname: "h.test", mqttAddr: ":1", httpsAddr: ":2", amqpAddr: ":3", amqpPlainAddr: "off", amqpPlainRemote: true,
				bearerToken: "t", partitions: 3, retention: 2 * time.Hour, consumerGroups: []string{"a", "b"},
				routes: localhub.RouteTwinChangeEvents | localhub.RouteDeviceLifecycleEvents, quotas: localhub.S1Quotas(), logLevel: slog.LevelWarn},
		},
		{
			name: "repeated consumer groups replace the default ones",
			args: []string{"--consumer-group", "x", "--consumer-group", "y,z"},
			want: defaults(func(c *config) { c.consumerGroups = []string{"x", "y", "z"} }),
		},
		{
			name: "no consumer group but $Default",
			args: []string{"--consumer-group="},
			want: defaults(func(c *config) { c.consumerGroups = []string{} }),
		},
		{name: "bad routes", args: []string{"--routes", "Telemetry"}, wantErr: "--routes: unknown routing source"},
		{name: "bad remote", args: []string{"--amqp-plain-remote", "maybe"}, wantErr: "--amqp-plain-remote must be true or false"},
		{name: "bad environment value", env: map[string]string{"LOCALHUB_PARTITIONS": "many"}, wantErr: "LOCALHUB_PARTITIONS must be"},
		{
			name: "S1 throttling",
			env:  map[string]string{"LOCALHUB_THROTTLE": "s1"},
			want: defaults(func(c *config) { c.quotas = localhub.S1Quotas() }),
		},
		{name: "bad throttle", args: []string{"--throttle", "s9"}, wantErr: "--throttle"},
		{name: "bad partitions", args: []string{"--partitions", "0"}, wantErr: "--partitions"},
		{name: "bad retention", args: []string{"--retention", "soon"}, wantErr: "--retention"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: "--log-level"},
		{
			name: "inherited sockets",
			args: []string{"--mqtt-addr", "fd:3", "--https-addr", "fd:4"},
			env:  map[string]string{"LOCALHUB_AMQP_ADDR": "fd:5", "LOCALHUB_AMQP_PLAIN_ADDR": "fd:6"},
			want: defaults(func(c *config) { c.mqttAddr, c.httpsAddr, c.amqpAddr, c.amqpPlainAddr = "fd:3", "fd:4", "fd:5", "fd:6" }),
		},
		{name: "stdio is no socket", args: []string{"--https-addr", "fd:2"}, wantErr: "--https-addr: \"fd:2\": want fd:N with N, a descriptor number, at least 3"},
		{name: "fd not a number", env: map[string]string{"LOCALHUB_MQTT_ADDR": "fd:three"}, wantErr: "LOCALHUB_MQTT_ADDR: \"fd:three\""},
		{name: "one socket for two listeners", args: []string{"--mqtt-addr", "fd:3", "--amqp-addr", "fd:3"}, wantErr: "--mqtt-addr and --amqp-addr both name fd:3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			got, err := loadServeConfig(tt.args, getenv)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// defaults is serve's configuration with no flag and no environment,
// changed by mod.
func defaults(mod func(*config)) config {
	c := config{
		dataDir: ".localhub", hostname: "localhost", mqttAddr: "127.0.0.1:8883", httpsAddr: "127.0.0.1:8443",
		amqpAddr: "127.0.0.1:5671", amqpPlainAddr: "127.0.0.1:5672",
		retention: 24 * time.Hour, consumerGroups: []string{"functions", "localdev"}, routes: localhub.DefaultRoutes,
	}
	mod(&c)
	return c
}

// TestServeKeepsTheDataDirsPartitions: without --partitions, serve starts
// on a data dir created with any count (it used to pass 4 and fail on
// another count); with it, a different count is an error.
func TestServeKeepsTheDataDirsPartitions(t *testing.T) {
	dataDir := t.TempDir()
	hub, err := localhub.Start(t.Context(), localhub.Options{DataDir: dataDir, Partitions: 2})
	require.NoError(t, err)
	require.NoError(t, hub.Close())

	cfg, err := loadServeConfig(append([]string{"--data-dir", dataDir}, randomPorts...), noEnv)
	require.NoError(t, err)
	hub, err = localhub.Start(t.Context(), cfg.options(slog.New(slog.DiscardHandler), inheritedListeners{}))
	require.NoError(t, err)
	require.Equal(t, 2, hub.Events().PartitionCount())
	require.NoError(t, hub.Close())

	cfg, err = loadServeConfig(append([]string{"--data-dir", dataDir, "--partitions", "4"}, randomPorts...), noEnv)
	require.NoError(t, err)
	_, err = localhub.Start(t.Context(), cfg.options(slog.New(slog.DiscardHandler), inheritedListeners{}))
	require.ErrorContains(t, err, "has 2 partitions, not 4")
}

// TestEventHubConnectionStringCommand prints the built-in endpoint's
// strings from a stopped hub's data dir and from a running one's.
func TestEventHubConnectionStringCommand(t *testing.T) {
	dataDir := t.TempDir()
	hub, err := localhub.Start(t.Context(), localhub.Options{DataDir: dataDir})
	require.NoError(t, err)
	tlsCS, err := hub.EventHubConnectionString("service", false)
	require.NoError(t, err)
	emuCS, err := hub.EventHubConnectionString("iothubowner", true)
	require.NoError(t, err)
	require.NoError(t, hub.Close())

	eventHubCS := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(t.Context(), append([]string{"eventhub-connection-string", "--data-dir", dataDir}, args...), noEnv, &out, io.Discard)
		return strings.TrimSpace(out.String()), err
	}
	got, err := eventHubCS()
	require.NoError(t, err)
	require.Equal(t, tlsCS, got, "default policy service, TLS; the listeners the hub last served")
	got, err = eventHubCS("--policy", "iothubowner", "--emulator")
	require.NoError(t, err)
	require.Equal(t, emuCS, got)
	require.True(t, strings.HasSuffix(got, ";UseDevelopmentEmulator=true"), got)
	_, err = eventHubCS("--policy", "registryRead")
	require.ErrorContains(t, err, "needs ServiceConnect")

	startHubProcess(t, dataDir)
	got, err = eventHubCS("--emulator")
	require.NoError(t, err)
	require.Contains(t, got, "SharedAccessKeyName=service;")
	require.NotEqual(t, emuCS, got, "the running hub's own ports")
	_, err = eventHubCS("--policy", "registryRead")
	require.ErrorContains(t, err, "needs ServiceConnect")
}

func TestUnknownCommand(t *testing.T) {
	err := run(t.Context(), []string{"launch"}, noEnv, io.Discard, io.Discard)
	require.ErrorContains(t, err, `unknown command "launch"`)
	err = run(t.Context(), []string{"device", "remove", "x"}, noEnv, io.Discard, io.Discard)
	require.Error(t, err)
}

// TestServeStopsOnCancel runs serve in-process and checks it prints the
// banner and returns cleanly when its context ends.
func TestServeStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, append([]string{"--data-dir", t.TempDir()}, randomPorts...), noEnv, pw, io.Discard)
		pw.Close()
	}()
	var banner strings.Builder
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		banner.WriteString(lines.Text() + "\n")
		if strings.HasPrefix(lines.Text(), "Create a device") {
			break
		}
	}
	for _, want := range []string{
		"serviceAndRegistryRead", "SharedAccessKeyName=iothubowner", "NODE_EXTRA_CA_CERTS=", "ca.pem",
		"Events (AMQP over TLS):   127.0.0.1:", "Events (plain AMQP):      127.0.0.1:",
		"Event Hub-compatible name: localhost", "Consumer groups:           $Default, functions, localdev",
		"Routed sources:            DeviceMessages, TwinChangeEvents",
		"Endpoint=sb://localhost:", "/;SharedAccessKeyName=service;SharedAccessKey=", ";EntityPath=localhost\n",
		";EntityPath=localhost;UseDevelopmentEmulator=true\n",
	} {
		require.Contains(t, banner.String(), want)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	select {
	case err := <-errc:
		require.True(t, err == nil || errors.Is(err, context.Canceled), "serve returned %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
	}
}

func noEnv(string) string { return "" }

func TestDescribeQuotas(t *testing.T) {
	require.Equal(t,
		"429 ThrottlingException past registry operations 100/min, twin reads 100/s, twin updates 50/s, direct methods 40/s, queries 20/min",
		describeQuotas(localhub.S1Quotas()))
	require.Equal(t, "429 ThrottlingException past direct methods 2/min", describeQuotas(localhub.Quotas{DirectMethods: 2.0 / 60}))
}
