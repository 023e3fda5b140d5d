package mqttgw

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// Values of the iothub-connection-auth-method annotation: a device-key
// token is scoped to the device, a shared-access-policy token to the hub.
const (
	authMethodDevice = `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`
	authMethodHub    = `{"scope":"hub","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`
)

// credentials are what a session's telemetry annotations need from its
// CONNECT.
type credentials struct {
	generationID string
	authMethod   string
	modelID      string
	// tokenExpiry is when the SAS token stops being accepted.
	tokenExpiry time.Time
}

// authenticate checks a CONNECT the way IoT Hub does (reference §1.2, §2.2).
// The error says why it was refused; it never contains the token.
func (g *Gateway) authenticate(pk packets.Packet) error {
	deviceID := pk.Connect.ClientIdentifier
	if strings.Contains(deviceID, "/") {
		return errors.New("module identities are not supported")
	}
	if deviceID == "" {
		return errors.New("empty client id")
	}
	if _, err := parseUsername(string(pk.Connect.Username), g.hostname, deviceID); err != nil {
		return err
	}
	if pk.Connect.WillFlag {
		t, err := ParseTopic(pk.Connect.WillTopic)
		if err != nil || t.Kind != TopicTelemetry || t.DeviceID != deviceID {
			return errors.New("will topic is not the device's telemetry topic")
		}
	}

	keys, enabled, _, err := g.registry.DeviceKeys(deviceID)
	if errors.Is(err, registry.ErrDeviceNotFound) {
		return errors.New("device not registered")
	} else if err != nil {
		return fmt.Errorf("look up device: %w", err)
	}
	if !enabled {
		return errors.New("device is disabled")
	}

	tok, err := sas.Parse(string(pk.Connect.Password))
	if err != nil {
		return errors.New("password is not a shared access signature")
	}
	if tok.KeyName == "" {
		if !verifyAny(tok, keys.PrimaryKey, keys.SecondaryKey) {
			return errors.New("signature does not match the device keys")
		}
	} else {
		policy, ok := g.registry.Policy(tok.KeyName)
		if !ok {
			return fmt.Errorf("unknown shared access policy %q", tok.KeyName)
		}
		if !policy.Rights.Has(registry.DeviceConnect) {
			return fmt.Errorf("policy %q lacks DeviceConnect", tok.KeyName)
		}
		if !verifyAny(tok, policy.PrimaryKey, policy.SecondaryKey) {
			return fmt.Errorf("signature does not match policy %q", tok.KeyName)
		}
	}
	if tok.Expired(g.now()) {
		return errors.New("token expired")
	}
	if !tok.Authorizes(g.hostname + "/devices/" + deviceID) {
		return errors.New("token audience does not cover the device")
	}
	return nil
}

// verifyAny checks the token against each base64 key in turn.
func verifyAny(tok sas.Token, keys ...string) bool {
	for _, k := range keys {
		if k == "" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(k)
		if err == nil && tok.Verify(raw) {
			return true
		}
	}
	return false
}

type username struct {
	modelID string
}

// parseUsername accepts both SDK spellings:
//
//	{host}/{deviceId}/?api-version=2021-04-12&DeviceClientType=...   (Node)
//	{host}/{deviceId}/api-version=2020-09-30[&model-id=...]          (Go)
func parseUsername(u, hostname, deviceID string) (username, error) {
	host, rest, ok := strings.Cut(u, "/")
	if !ok {
		return username{}, errors.New("username is not of the form {host}/{deviceId}/?api-version={version}")
	}
	if !strings.EqualFold(host, hostname) {
		return username{}, fmt.Errorf("username names host %q, not this hub", host)
	}
	query, ok := strings.CutPrefix(rest, deviceID+"/")
	if !ok {
		return username{}, errors.New("username does not name the client id's device")
	}
	props, err := parseBag(strings.TrimPrefix(query, "?"))
	if err != nil {
		return username{}, fmt.Errorf("username query: %w", err)
	}
	var user username
	hasVersion := false
	for _, p := range props {
		switch p.Key {
		case "api-version":
			hasVersion = p.Value != ""
		case "model-id":
			user.modelID = p.Value
		}
	}
	if !hasVersion {
		return username{}, errors.New("username has no api-version")
	}
	return user, nil
}

// sessionCredentials reads the credentials of a CONNECT that authenticate
// accepted. They are read again rather than carried over from
// authenticate: mochi has no per-client slot for them, and a side table
// would leak when the CONNACK write fails in between.
func (g *Gateway) sessionCredentials(pk packets.Packet) credentials {
	cred := credentials{authMethod: authMethodDevice}
	if user, err := parseUsername(string(pk.Connect.Username), g.hostname, pk.Connect.ClientIdentifier); err == nil {
		cred.modelID = user.modelID
	}
	if tok, err := sas.Parse(string(pk.Connect.Password)); err == nil {
		if tok.KeyName != "" {
			cred.authMethod = authMethodHub
		}
		cred.tokenExpiry = tok.Expiry.Add(sas.MaxClockSkew)
	}
	if _, _, gen, err := g.registry.DeviceKeys(pk.Connect.ClientIdentifier); err == nil {
		cred.generationID = gen
	}
	return cred
}

var errTokenExpired = errors.New("SAS token expired")

// expireWithToken ends s when its token does, as IoT Hub closes an MQTT
// connection whose token expires (401003 IoTHubUnauthorized; SDKs rely on
// it and reconnect with a new token). The token lives as long as
// authenticate accepts it: up to sas.MaxClockSkew past its se.
func (g *Gateway) expireWithToken(s *session, at time.Time) {
	if at.IsZero() {
		return
	}
	t := time.AfterFunc(at.Sub(g.now()), func() { g.endSession(s, errTokenExpired) })
	s.out.mu.Lock()
	closed := s.out.closed
	if !closed {
		s.expiry = t
	}
	s.out.mu.Unlock()
	if closed {
		t.Stop()
	}
}
