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

// Twin is a device twin as GET /twins/{id} returns it.
type Twin struct {
	DeviceID string `json:"deviceId"`
	// ETag is the twin's etag, for UpdateTwinOptions.IfMatch.
	ETag azcore.ETag `json:"etag"`
	// Version counts changes to tags and desired properties.
	Version int64 `json:"version"`
	// Status is "enabled" or "disabled".
	Status string `json:"status"`
	// ConnectionState is "Connected" or "Disconnected".
	ConnectionState  string    `json:"connectionState"`
	LastActivityTime time.Time `json:"lastActivityTime"`
	// Tags are set by the service only; devices never see them.
	Tags       map[string]any `json:"tags,omitempty"`
	Properties TwinProperties `json:"properties"`
}

// TwinProperties are the twin's desired and reported sections. Each holds
// the hub's "$version" and "$metadata" entries next to the properties.
type TwinProperties struct {
	Desired  map[string]any `json:"desired,omitempty"`
	Reported map[string]any `json:"reported,omitempty"`
}

// UnmarshalJSON decodes a twin, also accepting times without a zone, which
// the hub sends for some never-set times ("0001-01-01T00:00:00").
func (t *Twin) UnmarshalJSON(b []byte) error {
	type plain Twin
	aux := struct {
		*plain
		LastActivityTime wireTime `json:"lastActivityTime"`
	}{plain: (*plain)(t)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	t.LastActivityTime = time.Time(aux.LastActivityTime)
	return nil
}

// TwinPatch is a partial update of a twin. Keys set to nil are deleted; a
// nil map leaves that section alone.
type TwinPatch struct {
	Tags    map[string]any
	Desired map[string]any
}

// twinPatchBody is the PATCH /twins/{id} document.
type twinPatchBody struct {
	Tags       map[string]any       `json:"tags,omitempty"`
	Properties *twinPatchProperties `json:"properties,omitempty"`
}

type twinPatchProperties struct {
	Desired map[string]any `json:"desired"`
}

// GetTwinOptions contains the optional parameters for Client.GetTwin.
type GetTwinOptions struct {
	// for future expansion
}

// GetTwinResponse contains the response from Client.GetTwin.
type GetTwinResponse struct {
	Twin
}

// UpdateTwinOptions contains the optional parameters for Client.UpdateTwin.
type UpdateTwinOptions struct {
	// IfMatch makes the update conditional on the twin's etag; a stale etag
	// fails with 412 PreconditionFailed. nil updates unconditionally.
	IfMatch *azcore.ETag
}

// UpdateTwinResponse contains the response from Client.UpdateTwin: the
// whole twin after the update.
type UpdateTwinResponse struct {
	Twin
}

// GetTwin reads a device's twin.
// If the operation fails it returns an *azcore.ResponseError.
func (c *Client) GetTwin(ctx context.Context, deviceID string, opts *GetTwinOptions) (GetTwinResponse, error) {
	if err := deviceid.Validate(deviceID); err != nil {
		return GetTwinResponse{}, fmt.Errorf("iothub: GetTwin: %w", err)
	}
	req, err := c.newRequest(ctx, http.MethodGet, "twins", deviceID)
	if err != nil {
		return GetTwinResponse{}, err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return GetTwinResponse{}, err
	}
	var out GetTwinResponse
	if err := runtime.UnmarshalAsJSON(resp, &out.Twin); err != nil {
		return GetTwinResponse{}, fmt.Errorf("iothub: GetTwin: decoding twin: %w", err)
	}
	return out, nil
}

// UpdateTwin merges patch into a device's twin (PATCH): tags and desired
// properties only; the device is notified of desired changes.
// If the operation fails it returns an *azcore.ResponseError.
func (c *Client) UpdateTwin(ctx context.Context, deviceID string, patch TwinPatch, opts *UpdateTwinOptions) (UpdateTwinResponse, error) {
	if err := deviceid.Validate(deviceID); err != nil {
		return UpdateTwinResponse{}, fmt.Errorf("iothub: UpdateTwin: %w", err)
	}
	if opts == nil {
		opts = &UpdateTwinOptions{}
	}
	body := twinPatchBody{Tags: patch.Tags}
	if patch.Desired != nil {
		body.Properties = &twinPatchProperties{Desired: patch.Desired}
	}
	req, err := c.newRequest(ctx, http.MethodPatch, "twins", deviceID)
	if err != nil {
		return UpdateTwinResponse{}, err
	}
	if opts.IfMatch != nil {
		req.Raw().Header.Set("If-Match", ifMatchValue(opts.IfMatch))
	}
	if err := runtime.MarshalAsJSON(req, body); err != nil {
		return UpdateTwinResponse{}, fmt.Errorf("iothub: UpdateTwin: encoding patch: %w", err)
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return UpdateTwinResponse{}, err
	}
	var out UpdateTwinResponse
	if err := runtime.UnmarshalAsJSON(resp, &out.Twin); err != nil {
		return UpdateTwinResponse{}, fmt.Errorf("iothub: UpdateTwin: decoding twin: %w", err)
	}
	return out, nil
}
