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
	CAFile            string            `json:"caFile"`
	ConnectionStrings map[string]string `json:"connectionStrings"`
}

// writeRunFile records where this hub listens. It holds connection strings,
// so it is as private as the registry itself.
func (h *Hub) writeRunFile() error {
	info := runInfo{
		PID:               os.Getpid(),
		Hostname:          h.hostname,
		HTTPSURL:          h.httpsURL,
		MQTTAddr:          h.mqttAddr,
		CAFile:            h.CAFile(),
		ConnectionStrings: map[string]string{},
	}
	for _, name := range h.Policies() {
		cs, err := h.ServiceConnectionString(name)
		if err != nil {
			return err
		}
		info.ConnectionStrings[name] = cs
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
		return nil, fmt.Errorf("localhub: %s: %w", runFile, err)
	}
	u, err := url.Parse(info.HTTPSURL)
	if err != nil {
		return nil, fmt.Errorf("localhub: %s: %w", runFile, err)
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
			return "", fmt.Errorf("localhub: no shared access policy %q", policy)
		}
		return cs, nil
	}
	var out string
	err = withStore(dataDir, func(s *registry.Store, hostname string) error {
		p, ok := s.Policy(policy)
		if !ok {
			return fmt.Errorf("localhub: no shared access policy %q", policy)
		}
		out = sas.ConnectionString{HostName: hostname, SharedAccessKeyName: p.KeyName, SharedAccessKey: p.PrimaryKey}.String()
		return nil
	})
	return out, err
}

// CreateDeviceIn registers a device in the hub state in dataDir and returns
// its connection string. With a hub running there it goes through the
// hub's REST API, so connected clients see the same lifecycle event.
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
				return err
			}
			out = sas.ConnectionString{HostName: hostname, DeviceID: d.DeviceID, SharedAccessKey: d.Authentication.SymmetricKey.PrimaryKey}.String()
			return nil
		})
		return out, err
	}
	ca, err := os.ReadFile(info.CAFile)
	if err != nil {
		return "", fmt.Errorf("localhub: read CA: %w", err)
	}
	client, err := iothub.NewClientFromConnectionString(info.ConnectionStrings["registryReadWrite"], &iothub.ClientOptions{
		Endpoint:      info.HTTPSURL,
		ClientOptions: clientOptionsTrusting(ca),
	})
	if err != nil {
		return "", err
	}
	resp, err := client.CreateDevice(ctx, deviceID, nil)
	if err != nil {
		return "", fmt.Errorf("localhub: create device %q: %w", deviceID, err)
	}
	return sas.ConnectionString{
		HostName:        info.Hostname,
		DeviceID:        resp.Device.DeviceID,
		SharedAccessKey: resp.Device.Authentication.SymmetricKey.PrimaryKey,
	}.String(), nil
}

// withStore opens the registry of a data dir no hub is running on.
func withStore(dataDir string, fn func(s *registry.Store, hostname string) error) error {
	path := filepath.Join(dataDir, "registry.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("localhub: no hub state in %s (start the hub once first): %w", dataDir, err)
	}
	s, err := registry.Open(registry.Options{Path: path})
	if err != nil {
		return fmt.Errorf("localhub: registry: %w", err)
	}
	defer s.Close()
	return fn(s, hostnameOf(dataDir))
}

// hubFile, in a data dir, remembers the host name the hub serves, so that
// connection strings made while it is stopped name the same host.
const hubFile = "hub.json"

type hubInfo struct {
	Hostname string `json:"hostname"`
}

func writeHubFile(dataDir, hostname string) error {
	b, err := json.Marshal(hubInfo{Hostname: hostname})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dataDir, hubFile), b, 0o600)
}

// hostnameOf reads the host name a hub last served the data dir under.
func hostnameOf(dataDir string) string {
	var info hubInfo
	if b, err := os.ReadFile(filepath.Join(dataDir, hubFile)); err == nil && json.Unmarshal(b, &info) == nil && info.Hostname != "" {
		return info.Hostname
	}
	return "localhost"
}

func clientOptionsTrusting(caPEM []byte) azcore.ClientOptions {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return azcore.ClientOptions{Transport: &http.Client{Transport: tr}}
}
