package handlers

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// A response that cannot be encoded (a bug) still answers problem+json,
// as the API promises for every error.
func TestWriteJSONEncodingFailureIsAProblem(t *testing.T) {
	for _, tt := range []struct {
		name  string
		write func(w http.ResponseWriter)
	}{
		{"writeJSON", func(w http.ResponseWriter) { writeJSON(w, http.StatusOK, map[string]any{"x": math.NaN()}) }},
		{"writeProblem", func(w http.ResponseWriter) {
			writeProblem(w, httptest.NewRequest(http.MethodGet, "/", nil), problem{Status: http.StatusBadGateway, ErrorCode: codeDeviceError,
				Detail: "d", Extra: map[string]any{"devicePayload": json.RawMessage(`{`)}})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.write(rec)
			require.Equal(t, http.StatusInternalServerError, rec.Code)
			require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
			require.Equal(t, strconv.Itoa(rec.Body.Len()), rec.Header().Get("Content-Length"))
			var got map[string]any
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
			require.Equal(t, map[string]any{"type": "about:blank", "title": "Internal Server Error", "status": float64(500),
				"detail": "The response could not be encoded.", "errorCode": "InternalError"}, got)
		})
	}
}
