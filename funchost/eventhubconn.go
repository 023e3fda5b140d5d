package funchost

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
)

// ehConnection is how an Event Hubs trigger reaches its Event Hub, resolved
// from the binding's connection setting the way the extension's
// EventHubClientFactory does: the setting's value is a connection string,
// or the setting is a section whose fullyQualifiedNamespace child names a
// namespace to reach with an Entra ID credential.
type ehConnection struct {
	// setting is the connection setting's name, for messages.
	setting string
	// connectionString, when set, is the whole connection string; else the
	// connection is identity-based.
	connectionString string
	// entityPath is the connection string's EntityPath, "" if none.
	entityPath string
	// namespace is the fully qualified namespace without a port, as .NET's
	// EventHubsConnectionStringProperties.FullyQualifiedNamespace gives it
	// (Endpoint.Host): the PartitionContext's, and the checkpoints' key.
	namespace string
	// serverName, when set, is the name the TLS certificate must have: the
	// endpoint's host when the endpoint names a port, which azeventhubs
	// v2.0.2 would otherwise check as "host:port".
	serverName string
	// emulator: UseDevelopmentEmulator=true, plain AMQP.
	emulator bool
	// identity holds the section's settings for an identity-based
	// connection (fullyQualifiedNamespace, credential, clientId, ...).
	identity map[string]string
}

// webJobsPrefix is the prefix the host tries first for a connection
// setting (GetWebJobsConnectionStringSection).
const webJobsPrefix = "AzureWebJobs"

// resolveConnection resolves a connection setting name like
// GetWebJobsConnectionStringSection: AzureWebJobs<name> first, then
// <name>. A value is a connection string; else <name>__fullyQualifiedNamespace
// (or <name>:fullyQualifiedNamespace) makes it identity-based.
func resolveConnection(name string, s settings) (ehConnection, error) {
	for _, key := range []string{webJobsPrefix + name, name} {
		if v, ok := s.get(key); ok && strings.TrimSpace(v) != "" {
			return parseEventHubsConnectionString(name, strings.TrimSpace(v))
		}
	}
	for _, prefix := range []string{webJobsPrefix + name, name} {
		section := s.section(prefix)
		if len(section) == 0 {
			continue
		}
		ns := strings.TrimSpace(section["fullyqualifiednamespace"])
		if ns == "" {
			return ehConnection{}, fmt.Errorf("connection %q should have a 'fullyQualifiedNamespace' property or be a string representing a connection string", name)
		}
		host := ns
		if u, err := url.Parse(ns); err == nil && u.Host != "" {
			host = u.Host // sb://ns.servicebus.windows.net/ is accepted too
		}
		return ehConnection{setting: name, namespace: hostWithoutPort(host), identity: section}, nil
	}
	if looksLikeConnectionString(name) {
		name = "<< REDACTED >> (a full connection string was incorrectly used instead of a connection name)"
	}
	return ehConnection{}, fmt.Errorf("EventHub account connection string with name '%s' does not exist in the settings. Make sure that it is a defined App Setting", name)
}

func parseEventHubsConnectionString(setting, cs string) (ehConnection, error) {
	props, err := azeventhubs.ParseConnectionString(cs)
	if err != nil {
		// azeventhubs' messages quote no part of the string, so no key leaks.
		return ehConnection{}, fmt.Errorf("connection %q: %w", setting, err)
	}
	c := ehConnection{
		setting:          setting,
		connectionString: cs,
		namespace:        hostWithoutPort(props.FullyQualifiedNamespace),
		emulator:         props.Emulator,
	}
	if props.EntityPath != nil {
		c.entityPath = *props.EntityPath
	}
	if _, _, err := net.SplitHostPort(props.FullyQualifiedNamespace); err == nil && !c.emulator {
		c.serverName = c.namespace
	}
	return c, nil
}

func hostWithoutPort(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return hostport
}

// looksLikeConnectionString: the common mistake of putting the connection
// string itself in function.json's connection, which must not be logged.
func looksLikeConnectionString(s string) bool {
	l := strings.ToLower(s)
	return strings.Contains(l, "sharedaccesskey") || strings.Contains(l, "endpoint=")
}

// identityBased reports whether the connection uses an Entra ID credential.
func (c ehConnection) identityBased() bool { return c.connectionString == "" }

// consumerClient creates the trigger's Event Hubs client (it connects on
// first use). eventHub is the binding's name, which EntityPath overrides.
func (c ehConnection) consumerClient(eventHub, consumerGroup string, retry clientRetry) (*azeventhubs.ConsumerClient, error) {
	opts := &azeventhubs.ConsumerClientOptions{
		ApplicationID: "funchost",
		RetryOptions:  retry.options(),
	}
	if c.serverName != "" {
		// Roots stay the system's (SSL_CERT_FILE on Linux), as the host's.
		opts.TLSConfig = &tls.Config{ServerName: c.serverName, MinVersion: tls.VersionTLS12}
	}
	if !c.identityBased() {
		name := eventHub
		if c.entityPath != "" {
			name = "" // azeventhubs takes the name from EntityPath only
		}
		return azeventhubs.NewConsumerClientFromConnectionString(c.connectionString, name, consumerGroup, opts)
	}
	cred, err := c.credential()
	if err != nil {
		return nil, err
	}
	return azeventhubs.NewConsumerClient(c.namespace, eventHub, consumerGroup, cred, opts)
}

// credential is the identity-based connection's credential, chosen as the
// host's AzureComponentFactory chooses: credential=managedidentity (with
// an optional clientId) is a managed identity, tenantId + clientId +
// clientSecret a service principal, anything else
// DefaultAzureCredential (locally: the developer's sign-in).
func (c ehConnection) credential() (azcore.TokenCredential, error) {
	id := c.identity
	clientID := id["clientid"]
	switch {
	case strings.EqualFold(id["credential"], "managedidentity"):
		opts := &azidentity.ManagedIdentityCredentialOptions{}
		if clientID != "" {
			opts.ID = azidentity.ClientID(clientID)
		}
		return azidentity.NewManagedIdentityCredential(opts)
	case id["tenantid"] != "" && clientID != "" && id["clientsecret"] != "":
		return azidentity.NewClientSecretCredential(id["tenantid"], clientID, id["clientsecret"], nil)
	case id["credential"] != "":
		return nil, fmt.Errorf("connection %q: credential %q is not supported (managedidentity, or leave it out)", c.setting, id["credential"])
	}
	opts := &azidentity.DefaultAzureCredentialOptions{}
	if id["tenantid"] != "" {
		opts.TenantID = id["tenantid"]
	}
	return azidentity.NewDefaultAzureCredential(opts)
}

func (r clientRetry) options() azeventhubs.RetryOptions {
	o := azeventhubs.RetryOptions{
		MaxRetries:    int32(r.maxRetries),
		RetryDelay:    r.delay,
		MaxRetryDelay: r.maxDelay,
	}
	if r.maxRetries == 0 {
		o.MaxRetries = -1 // azeventhubs reads 0 as its default, three
	}
	if r.delay == 0 {
		o.RetryDelay = -1
	}
	return o
}
