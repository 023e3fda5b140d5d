package handlers_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/handlers"
)

// Contract tests: POST the exact bodies the Functions host sends (fixtures
// in testdata/, built from functions-custom-handler.md §2.1 and §3.1-3.2,
// double encoding included) and compare the whole response with a golden
// file. Regenerate with: go test ./handlers -run TestContract -update
var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestContract(t *testing.T) {
	// No hub call is made for these fixtures; the client points nowhere.
	client, err := handlers.NewHubClient(handlers.Config{ConnectionString: "HostName=unused.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=c2VjcmV0",
		Endpoint: "https://127.0.0.1:1"}, nil)
	require.NoError(t, err)
	srv := handlers.NewServer(handlers.Deps{Hub: client})

	tests := []struct {
		fixture    string
		path       string
		wantStatus int
	}{
		{"twinchange_batch.json", "/TwinChangeProcessor", http.StatusOK},
		{"http_rebootdevice_invalid.json", "/RebootDevice", http.StatusOK},
		{"http_rebootstatus_invalid.json", "/RebootStatus", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tt.fixture))
			require.NoError(t, err)
			req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:40001"+tt.path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json; charset=utf-8")
			req.Header.Set("X-Azure-Functions-InvocationId", "5f2a9d4e-1c0b-4e8a-9f3d-7b6a5c4d3e2f")
			req.Header.Set("X-Azure-Functions-HostVersion", "4.1037.0.0")
			req.Header.Set("User-Agent", "Azure-Functions-Host/4.1037.0.0")
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			require.Equal(t, tt.wantStatus, rec.Code, "body: %s", rec.Body)
			require.Equal(t, "application/json; charset=utf-8", rec.Header().Get("Content-Type"))

			var pretty bytes.Buffer
			require.NoError(t, json.Indent(&pretty, rec.Body.Bytes(), "", "  "))
			golden := filepath.Join("testdata", strings.TrimSuffix(tt.fixture, ".json")+".golden")
			if *update {
				require.NoError(t, os.WriteFile(golden, pretty.Bytes(), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run with -update to create %s", golden)
			require.Equal(t, string(want), pretty.String())
			require.NotContains(t, pretty.String(), "c2VjcmV0LWtleQ", "the caller's function key leaked")
		})
	}
}

func readFixture(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join("testdata", name))
}
