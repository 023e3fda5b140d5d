package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// maxBodyBytes caps request bodies. IoT Hub's largest documented bodies are
// twins (tags 8 KB + desired 32 KB) and method payloads (128 KB).
const maxBodyBytes = 256 << 10

const contentTypeJSON = "application/json; charset=utf-8"

// The service API's JSON documents (swagger Device, Twin,
// RegistryStatistics). The registry knows nothing of how they are spelled.

type symmetricKeyJSON struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

type x509ThumbprintJSON struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

type authenticationJSON struct {
	SymmetricKey   symmetricKeyJSON   `json:"symmetricKey"`
	X509Thumbprint x509ThumbprintJSON `json:"x509Thumbprint"`
	Type           string             `json:"type"`
}

type capabilitiesJSON struct {
	IotEdge bool `json:"iotEdge"`
}

// deviceJSON is GET /devices/{id}. Times are UTC with a trailing Z: the Go
// SDK (amenzhinsky) rejects offsets, and a time that never happened is
// 0001-01-01T00:00:00Z.
type deviceJSON struct {
	DeviceID                   string             `json:"deviceId"`
	GenerationID               string             `json:"generationId"`
	ETag                       string             `json:"etag"`
	ConnectionState            string             `json:"connectionState"`
	Status                     string             `json:"status"`
	StatusReason               *string            `json:"statusReason"`
	ConnectionStateUpdatedTime time.Time          `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          time.Time          `json:"statusUpdatedTime"`
	LastActivityTime           time.Time          `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int                `json:"cloudToDeviceMessageCount"`
	Authentication             authenticationJSON `json:"authentication"`
	Capabilities               capabilitiesJSON   `json:"capabilities"`
	DeviceScope                *string            `json:"deviceScope"`
	ParentScopes               []string           `json:"parentScopes"`
}

func toDeviceJSON(d registry.Device) deviceJSON {
	parents := d.ParentScopes
	if parents == nil {
		parents = []string{} // IoT Hub sends [], never null
	}
	return deviceJSON{
		DeviceID:                   d.DeviceID,
		GenerationID:               d.GenerationID,
		ETag:                       d.ETag,
		ConnectionState:            d.ConnectionState,
		Status:                     d.Status,
		StatusReason:               d.StatusReason,
		ConnectionStateUpdatedTime: d.ConnectionStateUpdatedTime.UTC(),
		StatusUpdatedTime:          d.StatusUpdatedTime.UTC(),
		LastActivityTime:           d.LastActivityTime.UTC(),
		CloudToDeviceMessageCount:  d.CloudToDeviceMessageCount,
		Authentication: authenticationJSON{
			SymmetricKey: symmetricKeyJSON(d.Authentication.SymmetricKey),
			X509Thumbprint: x509ThumbprintJSON{
				PrimaryThumbprint:   d.Authentication.X509Thumbprint.PrimaryThumbprint,
				SecondaryThumbprint: d.Authentication.X509Thumbprint.SecondaryThumbprint,
			},
			Type: d.Authentication.Type,
		},
		Capabilities: capabilitiesJSON(d.Capabilities),
		DeviceScope:  d.DeviceScope,
		ParentScopes: parents,
	}
}

func toDevicesJSON(ds []registry.Device) []deviceJSON {
	out := make([]deviceJSON, len(ds)) // an empty registry is [], never null
	for i, d := range ds {
		out[i] = toDeviceJSON(d)
	}
	return out
}

// twinJSON is GET /twins/{id} (reference §3.4); tags are left out when the
// twin has none, as IoT Hub does.
type twinJSON struct {
	DeviceID                  string             `json:"deviceId"`
	ETag                      string             `json:"etag"`
	DeviceETag                string             `json:"deviceEtag"`
	Status                    string             `json:"status"`
	StatusReason              *string            `json:"statusReason,omitempty"`
	StatusUpdateTime          time.Time          `json:"statusUpdateTime"`
	ConnectionState           string             `json:"connectionState"`
	LastActivityTime          time.Time          `json:"lastActivityTime"`
	CloudToDeviceMessageCount int                `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string             `json:"authenticationType"`
	X509Thumbprint            x509ThumbprintJSON `json:"x509Thumbprint"`
	ModelID                   string             `json:"modelId"`
	Version                   int64              `json:"version"`
	Tags                      map[string]any     `json:"tags,omitempty"`
	Properties                propertiesJSON     `json:"properties"`
	Capabilities              capabilitiesJSON   `json:"capabilities"`
}

type propertiesJSON struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

func toTwinJSON(t registry.Twin) twinJSON {
	return twinJSON{
		DeviceID:                  t.DeviceID,
		ETag:                      t.ETag,
		DeviceETag:                t.DeviceETag,
		Status:                    t.Status,
		StatusReason:              t.StatusReason,
		StatusUpdateTime:          t.StatusUpdateTime.UTC(),
		ConnectionState:           t.ConnectionState,
		LastActivityTime:          t.LastActivityTime.UTC(),
		CloudToDeviceMessageCount: t.CloudToDeviceMessageCount,
		AuthenticationType:        t.AuthenticationType,
		X509Thumbprint: x509ThumbprintJSON{
			PrimaryThumbprint:   t.X509Thumbprint.PrimaryThumbprint,
			SecondaryThumbprint: t.X509Thumbprint.SecondaryThumbprint,
		},
		ModelID:      t.ModelID,
		Version:      t.Version,
		Tags:         t.Tags,
		Properties:   propertiesJSON{Desired: t.Properties.Desired, Reported: t.Properties.Reported},
		Capabilities: capabilitiesJSON(t.Capabilities),
	}
}

// statisticsJSON is GET /statistics/devices.
type statisticsJSON struct {
	TotalDeviceCount    int `json:"totalDeviceCount"`
	EnabledDeviceCount  int `json:"enabledDeviceCount"`
	DisabledDeviceCount int `json:"disabledDeviceCount"`
}

// writeJSON writes v as the response body with IoT Hub's content type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Our own response types always encode; reaching this is a bug.
		status = http.StatusInternalServerError
		b = []byte(`{"Message":"ErrorCode:ServerError;response encoding failed","ExceptionMessage":""}`)
	}
	writeRaw(w, status, b)
}

// writeRaw writes an already encoded JSON body.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// readBody reads a capped request body within the request's body deadline
// (see withBodyDeadline).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *hubError) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, errMessageTooLarge(fmt.Sprintf("The request body exceeds the maximum size of %d bytes.", tooLarge.Limit))
	case isTimeout(err):
		// The connection cannot be reused: the rest of the body is unread.
		w.Header().Set("Connection", "close")
		return nil, errFormat("The request body did not arrive in time.")
	case err != nil:
		return nil, errFormat("The request body could not be read.")
	}
	return b, nil
}

// decode reads a capped JSON request body into a T. An empty body is an error.
func decode[T any](w http.ResponseWriter, r *http.Request) (T, *hubError) {
	var v T
	b, herr := readBody(w, r)
	if herr != nil {
		return v, herr
	}
	if err := unmarshal(b, &v); err != nil {
		return v, err
	}
	return v, nil
}

// unmarshal decodes one JSON value, rejecting trailing data. Numbers in
// untyped values stay json.Number, so integers beyond 2^53 are seen (and
// refused by the registry) rather than rounded.
func unmarshal(b []byte, v any) *hubError {
	if len(bytes.TrimSpace(b)) == 0 {
		return errFormat("The request body is empty.")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return errFormat("The request body is not valid JSON: " + err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return errFormat("The request body has data after the JSON value.")
	}
	return nil
}

// isNull reports whether a JSON body is the literal null.
func isNull(b []byte) bool { return bytes.Equal(bytes.TrimSpace(b), []byte("null")) }
