package rest

import (
	"encoding/json"
	"net/http"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

func handleGetTwin(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		twin, err := d.Registry.GetTwin(id)
		if err != nil {
			writeError(w, d.Now(), classic, fromRegistry(err, id))
			return
		}
		writeTwin(w, twin)
	})
}

// twinUpdate is PatchTwin or ReplaceTwin.
type twinUpdate func(s *registry.Store, id string, p registry.TwinPatch, ifMatch string) (registry.Twin, error)

func patchTwin(s *registry.Store, id string, p registry.TwinPatch, ifMatch string) (registry.Twin, error) {
	return s.PatchTwin(id, p, ifMatch)
}

func replaceTwin(s *registry.Store, id string, p registry.TwinPatch, ifMatch string) (registry.Twin, error) {
	return s.ReplaceTwin(id, p, ifMatch)
}

// handleUpdateTwin serves PATCH (merge) and PUT (replace). The body may be
// a bare patch (Node, C#) or a whole twin read back and sent again (the Go
// SDK sends its Twin struct, the az CLI's "device-twin update --set" the
// twin it read): only tags and properties.desired are taken, read-only
// fields are ignored.
func handleUpdateTwin(d Deps, update twinUpdate) http.Handler {
	type request struct {
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired  map[string]any  `json:"desired"`
			Reported json.RawMessage `json:"reported"`
		} `json:"properties"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		body, herr := readBody(w, r)
		if herr != nil {
			writeError(w, d.Now(), classic, herr)
			return
		}
		if isNull(body) {
			// A null twin would replace tags and desired with nothing;
			// refused rather than read as "no change" or "wipe".
			writeError(w, d.Now(), classic, errArgumentNull("The twin in the request body is null."))
			return
		}
		var req request
		if herr := unmarshal(body, &req); herr != nil {
			writeError(w, d.Now(), classic, herr)
			return
		}
		if herr := checkReported(req.Properties.Reported); herr != nil {
			writeError(w, d.Now(), classic, herr)
			return
		}
		desired := req.Properties.Desired
		// A twin read back and sent whole carries the hub-maintained
		// $metadata and $version; they are not the caller's to set.
		delete(desired, "$metadata")
		delete(desired, "$version")
		patch := registry.TwinPatch{Tags: req.Tags, Desired: desired}
		twin, err := update(d.Registry, id, patch, r.Header.Get("If-Match"))
		if err != nil {
			writeError(w, d.Now(), classic, fromRegistry(err, id))
			return
		}
		writeTwin(w, twin)
	})
}

// checkReported refuses a body that tries to set reported properties: only
// the device writes them. IoT Hub accepts, and ignores, the reported
// section of a twin read back and sent whole (the az CLI's
// "device-twin update" and the Go SDK's UpdateDeviceTwin send one on every
// call) and the empty one the C# SDK's Twin always carries. Such a section
// is empty or carries the hub's "$metadata" and "$version"; a section with
// properties and neither is an attempt to write them, which nothing in
// IoT Hub's sources accepts, so it is refused rather than silently dropped.
func checkReported(raw json.RawMessage) *hubError {
	if len(raw) == 0 || isNull(raw) {
		return nil
	}
	var reported map[string]json.RawMessage
	if err := json.Unmarshal(raw, &reported); err != nil {
		return errArgumentInvalid("properties.reported must be an object.")
	}
	if len(reported) == 0 {
		return nil
	}
	_, hasMeta := reported["$metadata"]
	_, hasVersion := reported["$version"]
	if hasMeta || hasVersion {
		return nil
	}
	return errArgumentInvalid("Reported properties can be updated only by the device; the service can update tags and desired properties.")
}

// writeTwin answers with the full twin and its quoted etag.
func writeTwin(w http.ResponseWriter, twin registry.Twin) {
	w.Header().Set("ETag", `"`+twin.ETag+`"`)
	writeJSON(w, http.StatusOK, toTwinJSON(twin))
}
