package iothub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/iothub-reboot/devmgmt/shared/deviceid"
)

// Device is a device identity in the hub's identity registry.
type Device struct {
	DeviceID     string `json:"deviceId"`
	GenerationID string `json:"generationId,omitempty"`
	// ETag is the device identity's etag (not the twin's).
	ETag azcore.ETag `json:"etag,omitempty"`
	// Status is "enabled" or "disabled".
	Status       string  `json:"status,omitempty"`
	StatusReason *string `json:"statusReason,omitempty"`
	// ConnectionState is "Connected" or "Disconnected".
	ConnectionState            string         `json:"connectionState,omitempty"`
	ConnectionStateUpdatedTime time.Time      `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          time.Time      `json:"statusUpdatedTime"`
	LastActivityTime           time.Time      `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
	Capabilities               Capabilities   `json:"capabilities"`
}

// UnmarshalJSON decodes a device, also accepting the zone-less times the
// registry sends for never-set times ("0001-01-01T00:00:00").
func (d *Device) UnmarshalJSON(b []byte) error {
	type plain Device
	aux := struct {
		*plain
		ConnectionStateUpdatedTime wireTime `json:"connectionStateUpdatedTime"`
		StatusUpdatedTime          wireTime `json:"statusUpdatedTime"`
		LastActivityTime           wireTime `json:"lastActivityTime"`
	}{plain: (*plain)(d)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	d.ConnectionStateUpdatedTime = time.Time(aux.ConnectionStateUpdatedTime)
	d.StatusUpdatedTime = time.Time(aux.StatusUpdatedTime)
	d.LastActivityTime = time.Time(aux.LastActivityTime)
	return nil
}

// Authentication is how a device authenticates. This client creates "sas"
// devices.
type Authentication struct {
	// Type is "sas", "selfSigned", "certificateAuthority" or "none".
	Type         string       `json:"type"`
	SymmetricKey SymmetricKey `json:"symmetricKey"`
}

// SymmetricKey holds a SAS device's base64 keys.
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// Capabilities of a device.
type Capabilities struct {
	IotEdge bool `json:"iotEdge"`
}

// CreateDeviceOptions contains the optional parameters for
// Client.CreateDevice.
type CreateDeviceOptions struct {
	// PrimaryKey and SecondaryKey are base64 symmetric keys; empty lets the
	// hub generate them.
	PrimaryKey   string
	SecondaryKey string
	// Disabled registers the device with status "disabled": it cannot
	// connect until enabled.
	Disabled bool
}

// CreateDeviceResponse contains the response from Client.CreateDevice: the
// registered device with its keys.
type CreateDeviceResponse struct {
	Device
}

// GetDeviceOptions contains the optional parameters for Client.GetDevice.
type GetDeviceOptions struct {
	// for future expansion
}

// GetDeviceResponse contains the response from Client.GetDevice.
type GetDeviceResponse struct {
	Device
}

// DeleteDeviceOptions contains the optional parameters for
// Client.DeleteDevice.
type DeleteDeviceOptions struct {
	// IfMatch makes the delete conditional on the device's etag; nil
	// deletes whatever the etag ("*").
	IfMatch *azcore.ETag
}

// DeleteDeviceResponse contains the response from Client.DeleteDevice.
type DeleteDeviceResponse struct {
	// for future expansion
}

// createDeviceBody is the PUT /devices/{id} document for a new SAS device.
type createDeviceBody struct {
	DeviceID       string         `json:"deviceId"`
	Status         string         `json:"status"`
	Authentication Authentication `json:"authentication"`
	Capabilities   Capabilities   `json:"capabilities"`
}

// CreateDevice registers a device that authenticates with symmetric keys
// (SAS). An existing id fails with 409 DeviceAlreadyExists.
// If the operation fails it returns an *azcore.ResponseError.
func (c *Client) CreateDevice(ctx context.Context, deviceID string, opts *CreateDeviceOptions) (CreateDeviceResponse, error) {
	if err := deviceid.Validate(deviceID); err != nil {
		return CreateDeviceResponse{}, fmt.Errorf("iothub: CreateDevice: %w", err)
	}
	if opts == nil {
		opts = &CreateDeviceOptions{}
	}
	body := createDeviceBody{
		DeviceID: deviceID,
		Status:   "enabled",
		Authentication: Authentication{
			Type:         "sas",
			SymmetricKey: SymmetricKey{PrimaryKey: opts.PrimaryKey, SecondaryKey: opts.SecondaryKey},
		},
	}
	if opts.Disabled {
		body.Status = "disabled"
	}
	req, err := c.newRequest(ctx, http.MethodPut, "devices", deviceID)
	if err != nil {
		return CreateDeviceResponse{}, err
	}
	if err := runtime.MarshalAsJSON(req, body); err != nil {
		return CreateDeviceResponse{}, fmt.Errorf("iothub: CreateDevice: encoding device: %w", err)
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return CreateDeviceResponse{}, err
	}
	var out CreateDeviceResponse
	if err := runtime.UnmarshalAsJSON(resp, &out.Device); err != nil {
		return CreateDeviceResponse{}, fmt.Errorf("iothub: CreateDevice: decoding device: %w", err)
	}
	return out, nil
}

// GetDevice reads a device identity, including its keys.
// If the operation fails it returns an *azcore.ResponseError.
func (c *Client) GetDevice(ctx context.Context, deviceID string, opts *GetDeviceOptions) (GetDeviceResponse, error) {
	if err := deviceid.Validate(deviceID); err != nil {
		return GetDeviceResponse{}, fmt.Errorf("iothub: GetDevice: %w", err)
	}
	req, err := c.newRequest(ctx, http.MethodGet, "devices", deviceID)
	if err != nil {
		return GetDeviceResponse{}, err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return GetDeviceResponse{}, err
	}
	var out GetDeviceResponse
	if err := runtime.UnmarshalAsJSON(resp, &out.Device); err != nil {
		return GetDeviceResponse{}, fmt.Errorf("iothub: GetDevice: decoding device: %w", err)
	}
	return out, nil
}

// DeleteDevice removes a device identity and its twin.
// If the operation fails it returns an *azcore.ResponseError.
func (c *Client) DeleteDevice(ctx context.Context, deviceID string, opts *DeleteDeviceOptions) (DeleteDeviceResponse, error) {
	if err := deviceid.Validate(deviceID); err != nil {
		return DeleteDeviceResponse{}, fmt.Errorf("iothub: DeleteDevice: %w", err)
	}
	if opts == nil {
		opts = &DeleteDeviceOptions{}
	}
	req, err := c.newRequest(ctx, http.MethodDelete, "devices", deviceID)
	if err != nil {
		return DeleteDeviceResponse{}, err
	}
	req.Raw().Header.Set("If-Match", ifMatchValue(opts.IfMatch))
	if _, err := c.do(req, http.StatusNoContent); err != nil {
		return DeleteDeviceResponse{}, err
	}
	return DeleteDeviceResponse{}, nil
}
