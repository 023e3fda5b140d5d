package iothub

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/iothub-reboot/devmgmt/shared/sas"
)

const (
	moduleName    = "github.com/iothub-reboot/devmgmt/shared/iothub"
	moduleVersion = "v0.1.0"

	// apiVersion is the version the current Azure SDKs (Node, C#) send.
	apiVersion = "2021-04-12"

	// tokenScope is the Entra ID scope of the IoT Hub data plane.
	tokenScope = "https://iothubs.azure.net/.default"
)

// ClientOptions configure a Client. A nil *ClientOptions is the same as a
// zero ClientOptions.
type ClientOptions struct {
	azcore.ClientOptions

	// Endpoint overrides "https://<hostname>" as the base URL requests go to,
	// e.g. the local hub's "https://127.0.0.1:41234". Tokens still name the
	// hostname. Authenticated requests are refused over plain http.
	Endpoint string
}

// Client calls the IoT Hub service REST API. It is immutable and safe for
// concurrent use.
type Client struct {
	internal *azcore.Client
	endpoint string
}

// NewClient returns a client for the hub hostname (e.g.
// "myhub.azure-devices.net") that authenticates with Microsoft Entra ID
// bearer tokens for the scope "https://iothubs.azure.net/.default".
func NewClient(hostname string, cred azcore.TokenCredential, opts *ClientOptions) (*Client, error) {
	if cred == nil {
		return nil, errors.New("iothub: credential is nil")
	}
	auth := runtime.NewBearerTokenPolicy(cred, []string{tokenScope}, nil)
	return newClient(hostname, auth, opts)
}

// NewClientFromConnectionString returns a client authenticated by a shared
// access policy, from a service connection string
// "HostName=...;SharedAccessKeyName=...;SharedAccessKey=...". Each request is
// signed with a token valid for one hour, renewed before it expires.
func NewClientFromConnectionString(connectionString string, opts *ClientOptions) (*Client, error) {
	cs, err := sas.ParseConnectionString(connectionString)
	if err != nil {
		return nil, fmt.Errorf("iothub: parsing connection string: %w", err)
	}
	if cs.DeviceID != "" {
		return nil, errors.New("iothub: connection string names a device; the service API needs a shared access policy")
	}
	if cs.SharedAccessKeyName == "" {
		return nil, errors.New("iothub: connection string has no SharedAccessKeyName")
	}
	auth := newSASPolicy(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, nil)
	return newClient(cs.HostName, auth, opts)
}

func newClient(hostname string, auth policy.Policy, opts *ClientOptions) (*Client, error) {
	if opts == nil {
		opts = &ClientOptions{}
	}
	if hostname == "" {
		return nil, errors.New("iothub: hostname is empty")
	}
	endpoint, err := endpointURL(hostname, opts.Endpoint)
	if err != nil {
		return nil, err
	}
	azc, err := azcore.NewClient(moduleName, moduleVersion, runtime.PipelineOptions{
		APIVersion: runtime.APIVersionOptions{
			Location: runtime.APIVersionLocationQueryParam,
			Name:     "api-version",
		},
		PerRetry: []policy.Policy{auth},
		Tracing:  runtime.TracingOptions{Namespace: "Microsoft.Devices"},
	}, &opts.ClientOptions)
	if err != nil {
		return nil, fmt.Errorf("iothub: building pipeline: %w", err)
	}
	return &Client{internal: azc, endpoint: endpoint}, nil
}

// endpointURL picks the base URL: the override if any, else https://hostname.
func endpointURL(hostname, override string) (string, error) {
	if override == "" {
		return "https://" + hostname, nil
	}
	u, err := url.Parse(override)
	if err != nil {
		return "", fmt.Errorf("iothub: invalid Endpoint: %w", err)
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("iothub: Endpoint %q is not an absolute URL", override)
	}
	return strings.TrimRight(override, "/"), nil
}
