package rest

import (
	"fmt"
	"net/http"
	"strings"
)

// handleNoRoute answers requests no route matches with IoT Hub's JSON
// envelope: 405 with Allow when the path exists for other methods, else 404.
// (ServeMux's own 404/405 replies are plain text.)
func handleNoRoute(d Deps, mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, d.Now(), classic, errInvalidOperation(http.StatusMethodNotAllowed,
				fmt.Sprintf("The requested resource does not support http method '%s'.", r.Method)))
			return
		}
		writeError(w, d.Now(), classic, errInvalidOperation(http.StatusNotFound,
			fmt.Sprintf("No HTTP resource was found that matches the request URI '%s'.", r.URL.Path)))
	})
}

// allowedMethods lists the methods some route other than the catch-all
// serves for r's path.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodPost, http.MethodDelete} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return allow
}
