package localhub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// runFile, in a data dir, tells admin commands where the hub that owns the
// directory is listening. The registry file is locked while a hub runs, so
// they go through that hub's REST API instead.
const runFile = "run.json"

type runInfo struct {
	PID               int               `json:"pid"`
	Hostname          string            `json:"hostname"`
	HTTPSURL          string            `json:"httpsURL"`
	MQTTAddr          string            `json:"mqttAddr"`
	AMQPAddr          string            `json:"amqpAddr"`
	AMQPPlainAddr     string            `json:"amqpPlainAddr,omitempty"`
	CAFile            string            `json:"caFile"`
	ConnectionStrings map[string]string `json:"connectionStrings"`
	// EventHubConnectionStrings are the built-in endpoint's, by policy
	// (those with ServiceConnect).
	EventHubConnectionStrings map[string]eventHubStrings `json:"eventHubConnectionStrings"`
}

type eventHubStrings struct {
	TLS      string `json:"tls"`
	Emulator string `json:"emulator,omitempty"`
}

// writeRunFile records where this hub listens. It holds connection strings,
// so it is as private as the registry itself.
func (h *Hub) writeRunFile() error {
	info := runInfo{
		PID:               os.Getpid(),
		Hostname:          h.hostname,
		HTTPSURL:          h.httpsURL,
		MQTTAddr:          h.mqttAddr,
		AMQPAddr:          h.amqpAddr,
		AMQPPlainAddr:     h.amqpPlainAddr,
		CAFile:            h.CAFile(),
		ConnectionStrings: map[string]string{},
	}
	for _, name := range h.Policies() {
		cs, err := h.ServiceConnectionString(name)
		if err != nil {
			return err
		}
		info.ConnectionStrings[name] = cs
		if tlsCS, err := h.EventHubConnectionString(name, false); err == nil {
			if info.EventHubConnectionStrings == nil {
				info.EventHubConnectionStrings = map[string]eventHubStrings{}
			}
			emu, _ := h.EventHubConnectionString(name, true)
			info.EventHubConnectionStrings[name] = eventHubStrings{TLS: tlsCS, Emulator: emu}
		}
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(h.dataDir, runFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(h.dataDir, runFile))
}

func (h *Hub) removeRunFile() error {
	err := os.Remove(filepath.Join(h.dataDir, runFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Errors of the admin functions (…In), the same whether they went through
// a running hub's REST API or the data dir's registry.
var (
	ErrDeviceNotFound = errors.New("device not found")
	ErrDeviceExists   = errors.New("device already exists")
)

// HubInUseError says a live hub serves the data dir, so another one must
// not start on it.
type HubInUseError struct {
	DataDir  string
	PID      int
	HTTPSURL string
}

func (e *HubInUseError) Error() string {
	return fmt.Sprintf("a hub (pid %d, %s) already serves data dir %s (localhub serve or make run): stop it or use another data dir", e.PID, e.HTTPSURL, e.DataDir)
}

// CheckDataDirFree fails with a *HubInUseError when a live hub serves
// dataDir. Starting a second one would wait on the registry's file lock;
// this says why at once.
func CheckDataDirFree(ctx context.Context, dataDir string) error {
	info, err := running(ctx, dataDir)
	if err != nil || info == nil {
		return err
	}
	return &HubInUseError{DataDir: dataDir, PID: info.PID, HTTPSURL: info.HTTPSURL}
}

// running returns the run file of a live hub on dataDir, or nil when no hub
// answers there (none started, or one that died without cleaning up).
func running(ctx context.Context, dataDir string) (*runInfo, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, runFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var info runInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dataDir, runFile), err)
	}
	u, err := url.Parse(info.HTTPSURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dataDir, runFile), err)
	}
	dialer := net.Dialer{Timeout: time.Second}
	conn, err := dialer.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, nil
	}
	conn.Close()
	return &info, nil
}

// ServiceConnectionStringIn returns a policy's connection string from the
// hub state in dataDir, whether or not a hub is running on it.
func ServiceConnectionStringIn(ctx context.Context, dataDir, policy string) (string, error) {
	info, err := running(ctx, dataDir)
	if err != nil {
		return "", err
	}
	if info != nil {
		cs, ok := info.ConnectionStrings[policy]
		if !ok {
			return "", fmt.Errorf("no shared access policy %q", policy)
		}
		return cs, nil
	}
	var out string
	err = withStore(dataDir, func(s *registry.Store, hostname string) error {
		p, ok := s.Policy(policy)
		if !ok {
			return fmt.Errorf("no shared access policy %q", policy)
		}
		out = sas.ConnectionString{HostName: hostname, SharedAccessKeyName: p.KeyName, SharedAccessKey: p.PrimaryKey}.String()
		return nil
	})
	return out, err
}

// EventHubConnectionStringIn returns the built-in endpoint's connection
// string for a policy (Hub.EventHubConnectionString) from the hub state in
// dataDir, whether or not a hub is running on it: with none running, for
// the listeners the hub last served.
func EventHubConnectionStringIn(ctx context.Context, dataDir, policy string, emulator bool) (string, error) {
	info, err := running(ctx, dataDir)
	if err != nil {
		return "", err
	}
	if info == nil {
		var out string
		err := withStore(dataDir, func(s *registry.Store, hostname string) error {
			p, ok := s.Policy(policy)
			if !ok {
				return fmt.Errorf("no shared access policy %q", policy)
			}
			if !p.Rights.Has(registry.ServiceConnect) {
				return fmt.Errorf("policy %q cannot read the built-in endpoint: it needs ServiceConnect (%s has %s)", policy, policy, p.Rights)
			}
			last := lastServed(dataDir)
			addr := last.AMQPAddr
			if emulator {
				addr = last.AMQPPlainAddr
			}
			if addr == "" {
				return errors.New("the hub last ran with its plain AMQP listener off: there is no UseDevelopmentEmulator=true connection string")
			}
			out = eventHubConnectionString(hostname, addr, emulator, p.KeyName, p.PrimaryKey)
			return nil
		})
		return out, err
	}
	if _, ok := info.ConnectionStrings[policy]; !ok {
		return "", fmt.Errorf("no shared access policy %q", policy)
	}
	strs, ok := info.EventHubConnectionStrings[policy]
	switch {
	case !ok:
		return "", fmt.Errorf("policy %q cannot read the built-in endpoint: it needs ServiceConnect", policy)
	case !emulator:
		return strs.TLS, nil
	case strs.Emulator == "":
		return "", errors.New("the running hub's plain AMQP listener is off: there is no UseDevelopmentEmulator=true connection string")
	}
	return strs.Emulator, nil
}

// CreateDeviceIn registers a device in the hub state in dataDir and returns
// its connection string. With a hub running there it goes through the
// hub's REST API, so connected clients see the same lifecycle event.
// An existing id fails with ErrDeviceExists.
func CreateDeviceIn(ctx context.Context, dataDir, deviceID string) (string, error) {
	info, err := running(ctx, dataDir)
	if err != nil {
		return "", err
	}
	if info == nil {
		var out string
		err := withStore(dataDir, func(s *registry.Store, hostname string) error {
			d, err := s.CreateDevice(registry.Device{DeviceID: deviceID})
			if err != nil {
				return storeError(deviceID, err)
			}
			out = deviceConnectionString(hostname, deviceID, d.Authentication.SymmetricKey.PrimaryKey)
			return nil
		})
		return out, err
	}
	client, err := info.client("registryReadWrite")
	if err != nil {
		return "", err
	}
	resp, err := client.CreateDevice(ctx, deviceID, nil)
	if err != nil {
		return "", hubError(deviceID, err)
	}
	return deviceConnectionString(info.Hostname, resp.Device.DeviceID, resp.Device.Authentication.SymmetricKey.PrimaryKey), nil
}

// DeviceConnectionStringIn returns the connection string (primary key) of a
// registered device in the hub state in dataDir, whether or not a hub is
// running on it. An unknown id fails with ErrDeviceNotFound.
func DeviceConnectionStringIn(ctx context.Context, dataDir, deviceID string) (string, error) {
	info, err := running(ctx, dataDir)
	if err != nil {
		return "", err
	}
	if info == nil {
		var out string
		err := withStore(dataDir, func(s *registry.Store, hostname string) error {
			keys, _, _, err := s.DeviceKeys(deviceID)
			if err != nil {
				return storeError(deviceID, err)
			}
			out = deviceConnectionString(hostname, deviceID, keys.PrimaryKey)
			return nil
		})
		return out, err
	}
	client, err := info.client("registryRead")
	if err != nil {
		return "", err
	}
	resp, err := client.GetDevice(ctx, deviceID, nil)
	if err != nil {
		return "", hubError(deviceID, err)
	}
	return deviceConnectionString(info.Hostname, resp.Device.DeviceID, resp.Device.Authentication.SymmetricKey.PrimaryKey), nil
}

// DeviceSummary is one line of ListDevicesIn.
type DeviceSummary struct {
	DeviceID string
	// Status is "enabled" or "disabled".
	Status string
	// ConnectionState is "Connected" or "Disconnected".
	ConnectionState string
}

// ListDevicesIn lists every registered device in the hub state in dataDir,
// ordered by id, whether or not a hub is running on it. With a hub running
// it pages through a twin query, which has no cap on the number of devices
// (GET /devices stops at 1,000).
func ListDevicesIn(ctx context.Context, dataDir string) ([]DeviceSummary, error) {
	info, err := running(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	var out []DeviceSummary
	if info == nil {
		err := withStore(dataDir, func(s *registry.Store, _ string) error {
			twins, err := s.Twins()
			if err != nil {
				return err
			}
			for _, t := range twins {
				out = append(out, DeviceSummary{DeviceID: t.DeviceID, Status: t.Status, ConnectionState: t.ConnectionState})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	} else {
		client, err := info.client("service")
		if err != nil {
			return nil, err
		}
		pager := client.NewQueryPager("SELECT * FROM devices", &iothub.QueryOptions{PageSize: 100})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, hubError("", err)
			}
			for _, item := range page.Items {
				var t iothub.Twin
				if err := json.Unmarshal(item, &t); err != nil {
					return nil, fmt.Errorf("query result: %w", err)
				}
				out = append(out, DeviceSummary{DeviceID: t.DeviceID, Status: t.Status, ConnectionState: t.ConnectionState})
			}
		}
	}
	slices.SortFunc(out, func(a, b DeviceSummary) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	return out, nil
}

// client is a service client for a policy of the running hub, trusting
// its CA.
func (info *runInfo) client(policy string) (*iothub.Client, error) {
	ca, err := os.ReadFile(info.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read the hub's CA: %w", err)
	}
	cs, ok := info.ConnectionStrings[policy]
	if !ok {
		return nil, fmt.Errorf("the running hub has no shared access policy %q", policy)
	}
	return iothub.NewClientFromConnectionString(cs, &iothub.ClientOptions{
		Endpoint:      info.HTTPSURL,
		ClientOptions: clientOptionsTrusting(ca),
	})
}

func deviceConnectionString(hostname, deviceID, key string) string {
	return sas.ConnectionString{HostName: hostname, DeviceID: deviceID, SharedAccessKey: key}.String()
}

// storeError gives the registry's errors the admin functions' sentinels.
func storeError(deviceID string, err error) error {
	switch {
	case errors.Is(err, registry.ErrDeviceNotFound):
		return fmt.Errorf("device %q: %w", deviceID, ErrDeviceNotFound)
	case errors.Is(err, registry.ErrDeviceExists):
		return fmt.Errorf("device %q: %w", deviceID, ErrDeviceExists)
	}
	return fmt.Errorf("device %q: %w", deviceID, err)
}

// hubError turns a failed REST call into one line: azcore's error text
// spans many lines with the whole response, which a command should not
// print. IoT Hub's error code says what went wrong.
func hubError(deviceID string, err error) error {
	var respErr *azcore.ResponseError
	if !errors.As(err, &respErr) {
		return err
	}
	var what error
	switch iothub.ErrorCode(respErr.ErrorCode) {
	case iothub.DeviceNotFound:
		what = ErrDeviceNotFound
	case iothub.DeviceAlreadyExists:
		what = ErrDeviceExists
	default:
		what = fmt.Errorf("the hub answered %d %s", respErr.StatusCode, respErr.ErrorCode)
	}
	if deviceID == "" {
		return what
	}
	return fmt.Errorf("device %q: %w", deviceID, what)
}

// withStore opens the registry of a data dir no hub is running on.
func withStore(dataDir string, fn func(s *registry.Store, hostname string) error) error {
	path := filepath.Join(dataDir, "registry.db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no hub state in %s: start the hub on it once first", dataDir)
	} else if err != nil {
		return err
	}
	s, err := registry.Open(registry.Options{Path: path})
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s, hostnameOf(dataDir))
}

// hubFile, in a data dir, remembers the host name the hub serves, so that
// connection strings made while it is stopped name the same host.
const hubFile = "hub.json"

type hubInfo struct {
	Hostname string `json:"hostname"`
	// The built-in endpoint's listeners, for its connection strings.
	AMQPAddr      string `json:"amqpAddr,omitempty"`
	AMQPPlainAddr string `json:"amqpPlainAddr,omitempty"`
	// PlainOff records that the plain listener was off.
	PlainOff bool `json:"amqpPlainOff,omitempty"`
}

func writeHubFile(dataDir string, info hubInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dataDir, hubFile), b, 0o600)
}

// lastServed reads what a hub last served the data dir as; for a data dir
// written before the hub had AMQP listeners, the command's defaults.
func lastServed(dataDir string) hubInfo {
	var info hubInfo
	if b, err := os.ReadFile(filepath.Join(dataDir, hubFile)); err == nil {
		_ = json.Unmarshal(b, &info)
	}
	if info.Hostname == "" {
		info.Hostname = "localhost"
	}
	if info.AMQPAddr == "" {
		info.AMQPAddr = "127.0.0.1:5671"
	}
	if info.AMQPPlainAddr == "" && !info.PlainOff {
		info.AMQPPlainAddr = "127.0.0.1:5672"
	}
	return info
}

// hostnameOf reads the host name a hub last served the data dir under.
func hostnameOf(dataDir string) string { return lastServed(dataDir).Hostname }

func clientOptionsTrusting(caPEM []byte) azcore.ClientOptions {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return azcore.ClientOptions{Transport: &http.Client{Transport: tr}}
}
