package handlers

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// Retries of idempotent hub calls (twin reads, queries; direct methods are
// never retried by the client). They are kept short: an HTTP caller is
// waiting, and a throttled call is better passed on as 429 with the hub's
// Retry-After than slept on here, so a Retry-After above maxRetryDelay
// ends the retries.
const (
	hubMaxRetries    = 2
	hubRetryDelay    = 500 * time.Millisecond
	hubMaxRetryDelay = 4 * time.Second
)

// NewHubClient builds the IoT Hub client from cfg: a shared access policy
// when cfg.ConnectionString is set, else Entra ID for cfg.Hostname through
// the app's managed identity in Azure or DefaultAzureCredential elsewhere.
// opts may be nil; fields it leaves zero are filled from cfg (Endpoint,
// a transport trusting CAFile) and with the handler's retry defaults.
func NewHubClient(cfg Config, opts *iothub.ClientOptions) (*iothub.Client, error) {
	o := iothub.ClientOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Endpoint == "" {
		o.Endpoint = cfg.Endpoint
	}
	if o.Transport == nil && cfg.CAFile != "" {
		client, err := httpClientTrusting(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		o.Transport = client
	}
	if reflect.ValueOf(o.Retry).IsZero() {
		o.Retry = policy.RetryOptions{MaxRetries: hubMaxRetries, RetryDelay: hubRetryDelay, MaxRetryDelay: hubMaxRetryDelay}
	}

	if cfg.ConnectionString != "" {
		client, err := iothub.NewClientFromConnectionString(cfg.ConnectionString, &o)
		if err != nil {
			// The client's errors name keys, never values.
			return nil, fmt.Errorf("%s: %w", envConnectionString, err)
		}
		return client, nil
	}
	if cfg.Hostname == "" {
		return nil, errors.New("no IoT Hub access configured")
	}
	cred, err := credential(cfg, o.ClientOptions)
	if err != nil {
		return nil, fmt.Errorf("credential for Entra ID: %w", err)
	}
	return iothub.NewClient(cfg.Hostname, cred, &o)
}

// credential picks the managed identity directly where the platform offers
// one (deterministic, no probing of developer tools in production), and
// DefaultAzureCredential elsewhere (az login on a laptop). Both honour
// AZURE_CLIENT_ID for a user-assigned identity.
func credential(cfg Config, clientOpts azcore.ClientOptions) (azcore.TokenCredential, error) {
	if cfg.ManagedIdentityAvailable {
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: clientOpts}
		if cfg.ClientID != "" {
			o.ID = azidentity.ClientID(cfg.ClientID)
		}
		return azidentity.NewManagedIdentityCredential(o)
	}
	return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: clientOpts})
}

// httpClientTrusting returns an HTTP client that trusts the system roots
// plus the CA certificates in the PEM file at path (the local hub's CA).
func httpClientTrusting(path string) (*http.Client, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envCAFile, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", envCAFile, path)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: tr}, nil
}
