package sas

import (
	"errors"
	"fmt"
	"strings"
)

// ConnectionString is a parsed IoT Hub connection string
// (service: HostName+SharedAccessKeyName+SharedAccessKey;
// device: HostName+DeviceId+SharedAccessKey[+ModuleId][+GatewayHostName]).
type ConnectionString struct {
	HostName            string
	SharedAccessKeyName string
	SharedAccessKey     string
	DeviceID            string
	ModuleID            string
	GatewayHostName     string
}

// Connection string keys as the portal and the SDKs spell them.
const (
	keyHostName            = "HostName"
	keyDeviceID            = "DeviceId"
	keyModuleID            = "ModuleId"
	keySharedAccessKeyName = "SharedAccessKeyName"
	keySharedAccessKey     = "SharedAccessKey"
	keyGatewayHostName     = "GatewayHostName"
)

// ParseConnectionString parses "Key=Value;..." with case-insensitive keys.
// Values may contain '=' (base64 padding). HostName and SharedAccessKey are
// required, the key must be valid base64.
//
// It also rejects what would otherwise fail later and far away: a segment
// without '=', an empty value, a repeated or unknown key, a string that names
// neither a policy (SharedAccessKeyName) nor a device (DeviceId), and a
// ModuleId without a DeviceId. Errors name keys, never values, so that a
// key cannot leak into a log.
func ParseConnectionString(s string) (ConnectionString, error) {
	var c ConnectionString
	s = strings.TrimSpace(s)
	if s == "" {
		return ConnectionString{}, fmt.Errorf("%w: empty connection string", ErrMalformed)
	}
	// One trailing ';' is common in copied strings; other empty segments are not.
	for i, segment := range strings.Split(strings.TrimSuffix(s, ";"), ";") {
		if err := c.set(segment); err != nil {
			return ConnectionString{}, fmt.Errorf("%w: segment %d: %w", ErrMalformed, i+1, err)
		}
	}
	if err := c.validate(); err != nil {
		return ConnectionString{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return c, nil
}

// set stores one "Key=Value" segment.
func (c *ConnectionString) set(segment string) error {
	key, value, ok := strings.Cut(segment, "=")
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if !ok || key == "" {
		return errors.New("want Key=Value")
	}
	name, dst := c.field(key)
	if dst == nil {
		return fmt.Errorf("unknown key %q", truncate(key))
	}
	if *dst != "" {
		return fmt.Errorf("duplicate key %s", name)
	}
	if value == "" {
		return fmt.Errorf("empty value for %s", name)
	}
	*dst = value
	return nil
}

// field returns the canonical name and storage of a case-insensitive key, or
// a nil pointer for an unknown key.
func (c *ConnectionString) field(key string) (string, *string) {
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{keyHostName, &c.HostName},
		{keyDeviceID, &c.DeviceID},
		{keyModuleID, &c.ModuleID},
		{keySharedAccessKeyName, &c.SharedAccessKeyName},
		{keySharedAccessKey, &c.SharedAccessKey},
		{keyGatewayHostName, &c.GatewayHostName},
	} {
		if strings.EqualFold(key, f.name) {
			return f.name, f.dst
		}
	}
	return "", nil
}

func (c ConnectionString) validate() error {
	switch {
	case c.HostName == "":
		return fmt.Errorf("missing %s", keyHostName)
	case c.SharedAccessKey == "":
		return fmt.Errorf("missing %s", keySharedAccessKey)
	case c.SharedAccessKeyName == "" && c.DeviceID == "":
		return fmt.Errorf("need %s (service) or %s (device)", keySharedAccessKeyName, keyDeviceID)
	case c.ModuleID != "" && c.DeviceID == "":
		return fmt.Errorf("%s without %s", keyModuleID, keyDeviceID)
	}
	if _, err := decodeKey(c.SharedAccessKey); err != nil {
		return err
	}
	return nil
}

// String formats the connection string in the canonical order (the order of
// the portal and the SDKs' own builders), omitting empty fields.
func (c ConnectionString) String() string {
	var b strings.Builder
	for _, f := range []struct{ name, value string }{
		{keyHostName, c.HostName},
		{keyDeviceID, c.DeviceID},
		{keyModuleID, c.ModuleID},
		{keySharedAccessKeyName, c.SharedAccessKeyName},
		{keySharedAccessKey, c.SharedAccessKey},
		{keyGatewayHostName, c.GatewayHostName},
	} {
		if f.value == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(f.name)
		b.WriteByte('=')
		b.WriteString(f.value)
	}
	return b.String()
}
