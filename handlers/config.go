package handlers

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// App settings the handler reads (docs/function-app.md lists them all).
const (
	envConnectionString = "IOTHUB_CONNECTION_STRING"
	envHostname         = "IOTHUB_HOSTNAME"
	envClientID         = "AZURE_CLIENT_ID"
	envEndpoint         = "IOTHUB_ENDPOINT"
	envCAFile           = "IOTHUB_CA_FILE"
	envStatusDeadline   = "REBOOT_STATUS_DEADLINE"
	// Set by the Functions host; the legacy name is still set alongside.
	envPort       = "FUNCTIONS_CUSTOMHANDLER_PORT"
	envLegacyPort = "FUNCTIONS_HTTPWORKER_PORT"
	// Set by App Service (and so Functions) when a managed identity is
	// available to the app.
	envIdentityEndpoint = "IDENTITY_ENDPOINT"
)

// DefaultStatusDeadline is how long RebootStatus waits for the twin to show
// a reboot before reporting it timed out.
const DefaultStatusDeadline = 10 * time.Minute

// Config is the handler's configuration, from app settings.
type Config struct {
	// ConnectionString is an IoT Hub shared access policy connection
	// string. When set it wins over Hostname.
	ConnectionString string
	// Hostname is the hub's host name, used with Microsoft Entra ID
	// (managed identity in Azure) when ConnectionString is empty.
	Hostname string
	// ClientID selects a user-assigned managed identity.
	ClientID string
	// Endpoint overrides https://<hostname> (the local hub).
	Endpoint string
	// CAFile is a PEM file of an extra CA to trust for the hub.
	CAFile string
	// StatusDeadline bounds how long a reboot may take before RebootStatus
	// reports it timed out.
	StatusDeadline time.Duration
	// Port is the loopback port the host expects the handler on.
	Port string
	// ManagedIdentityAvailable is true when the platform offers a managed
	// identity endpoint (App Service / Functions in Azure).
	ManagedIdentityAvailable bool
}

// LoadConfig reads the configuration through getenv (os.Getenv in
// production). The error names the settings at fault, never their values.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		ConnectionString:         strings.TrimSpace(getenv(envConnectionString)),
		Hostname:                 strings.TrimSpace(getenv(envHostname)),
		ClientID:                 strings.TrimSpace(getenv(envClientID)),
		Endpoint:                 strings.TrimSpace(getenv(envEndpoint)),
		CAFile:                   strings.TrimSpace(getenv(envCAFile)),
		Port:                     strings.TrimSpace(getenv(envPort)),
		StatusDeadline:           DefaultStatusDeadline,
		ManagedIdentityAvailable: getenv(envIdentityEndpoint) != "",
	}
	var errs []error
	if c.ConnectionString == "" && c.Hostname == "" {
		errs = append(errs, fmt.Errorf("no IoT Hub access configured: set %s (a shared access policy connection string; serviceAndRegistryRead is enough) or %s (e.g. myhub.azure-devices.net, used with the app's managed identity)", envConnectionString, envHostname))
	}
	if c.Port == "" {
		c.Port = strings.TrimSpace(getenv(envLegacyPort))
	}
	if c.Port == "" {
		errs = append(errs, fmt.Errorf("%s is not set: the Functions host sets it; to run the handler alone, set it to a free port", envPort))
	} else if p, err := strconv.Atoi(c.Port); err != nil || p < 0 || p > 65535 {
		errs = append(errs, fmt.Errorf("%s is not a port number", envPort))
	}
	if s := strings.TrimSpace(getenv(envStatusDeadline)); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be a positive Go duration such as 10m or 1h30m", envStatusDeadline))
		} else {
			c.StatusDeadline = d
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// authMode describes how the handler authenticates to IoT Hub, for the
// start-up log line (names only, no secrets).
func (c Config) authMode() string {
	switch {
	case c.ConnectionString != "":
		return "shared access policy (" + envConnectionString + ")"
	case c.ManagedIdentityAvailable && c.ClientID != "":
		return "user-assigned managed identity (" + envClientID + ")"
	case c.ManagedIdentityAvailable:
		return "system-assigned managed identity"
	default:
		return "DefaultAzureCredential"
	}
}
