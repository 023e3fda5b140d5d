package rest

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// maxListTop is IoT Hub's default and maximum page for GET /devices.
const maxListTop = 1000

// handlePutDevice creates a device (no If-Match; 200, not 201, which the Go
// SDK would treat as an error) or updates one (If-Match present).
func handlePutDevice(d Deps) http.Handler {
	// request holds the fields a caller may set; read-only fields in the
	// body (etag, times, connection state) are ignored, whatever their form.
	type request struct {
		DeviceID       string              `json:"deviceId"`
		Status         string              `json:"status"`
		StatusReason   *string             `json:"statusReason"`
		Authentication *authenticationJSON `json:"authentication"`
		Capabilities   *capabilitiesJSON   `json:"capabilities"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		body, herr := readBody(w, r)
		if herr != nil {
			writeError(w, d.Now(), classic, herr)
			return
		}
		if isNull(body) {
			writeError(w, d.Now(), classic, errArgumentNull("The device in the request body is null."))
			return
		}
		var req request
		if herr := unmarshal(body, &req); herr != nil {
			writeError(w, d.Now(), classic, herr)
			return
		}
		if req.DeviceID != "" && req.DeviceID != id {
			writeError(w, d.Now(), classic, errArgumentInvalid(
				fmt.Sprintf("The device ID in the request body ('%s') does not match the device ID in the URI ('%s').", req.DeviceID, id)))
			return
		}
		dev := registry.Device{DeviceID: id, Status: req.Status, StatusReason: req.StatusReason}
		if a := req.Authentication; a != nil {
			dev.Authentication = registry.Authentication{
				SymmetricKey: registry.SymmetricKey(a.SymmetricKey),
				X509Thumbprint: registry.X509Thumbprint{
					PrimaryThumbprint:   a.X509Thumbprint.PrimaryThumbprint,
					SecondaryThumbprint: a.X509Thumbprint.SecondaryThumbprint,
				},
				Type: a.Type,
			}
		}
		if req.Capabilities != nil {
			dev.Capabilities = registry.Capabilities(*req.Capabilities)
		}

		var err error
		if ifMatch, ok := ifMatchHeader(r); ok {
			dev, err = d.Registry.UpdateDevice(dev, ifMatch)
		} else {
			dev, err = d.Registry.CreateDevice(dev)
		}
		if err != nil {
			writeError(w, d.Now(), classic, fromRegistry(err, id))
			return
		}
		if dev.Status == "disabled" {
			d.Devices.DisconnectDevice(id)
		}
		writeJSON(w, http.StatusOK, toDeviceJSON(dev))
	})
}

func handleGetDevice(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		dev, err := d.Registry.GetDevice(id)
		if err != nil {
			writeError(w, d.Now(), classic, fromRegistry(err, id))
			return
		}
		writeJSON(w, http.StatusOK, toDeviceJSON(dev))
	})
}

// handleDeleteDevice answers 204, the only success the Go SDK accepts for
// DELETE, and drops the device's connection.
func handleDeleteDevice(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := d.Registry.DeleteDevice(id, r.Header.Get("If-Match")); err != nil {
			writeError(w, d.Now(), classic, fromRegistry(err, id))
			return
		}
		d.Devices.DisconnectDevice(id)
		w.WriteHeader(http.StatusNoContent)
	})
}

func handleListDevices(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		top := maxListTop
		if s := r.URL.Query().Get("top"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > maxListTop {
				writeError(w, d.Now(), classic, errArgumentInvalid(
					fmt.Sprintf("top must be an integer within [1; %d].", maxListTop)))
				return
			}
			top = n
		}
		devs, err := d.Registry.ListDevices(top)
		if err != nil {
			writeError(w, d.Now(), classic, fromRegistry(err, ""))
			return
		}
		writeJSON(w, http.StatusOK, toDevicesJSON(devs))
	})
}

// ifMatchHeader returns the If-Match value and whether one was sent. The
// registry accepts *, "*", "<etag>" and <etag>; an empty header counts as
// absent.
func ifMatchHeader(r *http.Request) (string, bool) {
	v := r.Header.Get("If-Match")
	return v, v != ""
}
