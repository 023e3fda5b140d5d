package rest

import (
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
// a bare patch (Node) or a whole twin (the Go SDK sends its Twin struct):
// only tags and properties.desired are taken, read-only fields are ignored.
func handleUpdateTwin(d Deps, update twinUpdate) http.Handler {
	type request struct {
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired map[string]any `json:"desired"`
		} `json:"properties"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		req, herr := decode[request](w, r)
		if herr != nil {
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

// writeTwin answers with the full twin and its quoted etag.
func writeTwin(w http.ResponseWriter, twin registry.Twin) {
	w.Header().Set("ETag", `"`+twin.ETag+`"`)
	writeJSON(w, http.StatusOK, toTwinJSON(twin))
}
