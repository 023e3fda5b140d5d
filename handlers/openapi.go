package handlers

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"strings"
)

// openAPIDocument is the HTTP API as OpenAPI 2.0, the version Logic Apps
// custom connectors import. docs/openapi.json is a copy kept identical by
// a test.
//
//go:embed openapi.json
var openAPIDocument []byte

// handleOpenAPI serves the document with host and scheme set to the ones
// the caller used, so an import from this URL targets this app.
func handleOpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var doc map[string]any
		if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
			writeProblem(w, r, internalError("The OpenAPI document is corrupt."))
			return
		}
		base := publicBaseURL(r)
		scheme, host, _ := strings.Cut(base, "://")
		doc["host"] = host
		doc["schemes"] = []string{scheme}
		writeJSON(w, http.StatusOK, doc)
	})
}
