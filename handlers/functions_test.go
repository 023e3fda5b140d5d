package handlers_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/handlers"
)

// The function definitions (host.json, functions/*/function.json), the
// handler's routes and the OpenAPI document must agree; these tests fail on
// drift between them.

type binding struct {
	Type          string   `json:"type"`
	Direction     string   `json:"direction"`
	Name          string   `json:"name"`
	AuthLevel     string   `json:"authLevel"`
	Methods       []string `json:"methods"`
	Route         string   `json:"route"`
	EventHubName  string   `json:"eventHubName"`
	Schedule      string   `json:"schedule"`
	Connection    string   `json:"connection"`
	ConsumerGroup string   `json:"consumerGroup"`
	Cardinality   string   `json:"cardinality"`
	DataType      string   `json:"dataType"`
}

type functionJSON struct {
	Bindings []binding `json:"bindings"`
	Retry    *struct {
		Strategy      string `json:"strategy"`
		MaxRetryCount int    `json:"maxRetryCount"`
	} `json:"retry"`
}

func readFunctions(t *testing.T) map[string]functionJSON {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("..", "functions", "*", "function.json"))
	require.NoError(t, err)
	fns := map[string]functionJSON{}
	for _, path := range dirs {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		var f functionJSON
		require.NoError(t, json.Unmarshal(b, &f), path)
		name := filepath.Base(filepath.Dir(path))
		// The host's rule for function (folder) names.
		require.Regexp(t, `(?i)^[a-z][a-z0-9_\-]{0,127}$`, name)
		fns[name] = f
	}
	return fns
}

func TestFunctionDefinitions(t *testing.T) {
	fns := readFunctions(t)
	names := make([]string, 0, len(fns))
	for n := range fns {
		names = append(names, n)
	}
	slices.Sort(names)
	require.Equal(t, []string{"FleetRebootCancel", "FleetRebootStart", "FleetRebootStatus", "FleetRebootTimer",
		"OpenAPI", "RebootDevice", "RebootReport", "RebootStatus", "TwinChangeProcessor"}, names)

	var host struct {
		Version       string
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string
			}
			EnableForwardingHttpRequest bool
		}
		ExtensionBundle struct{ ID, Version string }
		Extensions      struct {
			HTTP struct{ RoutePrefix string }
		}
	}
	b, err := os.ReadFile(filepath.Join("..", "host.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &host))
	require.Equal(t, "2.0", host.Version)
	require.Equal(t, "handler", host.CustomHandler.Description.DefaultExecutablePath)
	require.True(t, host.CustomHandler.EnableForwardingHttpRequest)
	require.Equal(t, "[4.*, 5.0.0)", host.ExtensionBundle.Version)
	require.Equal(t, "api", host.Extensions.HTTP.RoutePrefix, "the handler serves /api/... when forwarding")

	ev := fns["TwinChangeProcessor"]
	require.Len(t, ev.Bindings, 1)
	require.Equal(t, binding{Type: "eventHubTrigger", Direction: "in", Name: "events",
		EventHubName: "%IOTHUB_EVENTHUB_NAME%", Connection: "IOTHUB_EVENTHUB_CONNECTION", ConsumerGroup: "%IOTHUB_CONSUMER_GROUP%",
		Cardinality: "many", DataType: "string"}, ev.Bindings[0])
	require.NotNil(t, ev.Retry, "a failed Event Hubs batch is checkpointed anyway: retry is the only second chance")

	// The timer's schedule is an app setting, so that the hub's query
	// budget (each run costs at least one twin query) is tuned without a
	// deployment; its binding name is the one the handler decodes.
	timer := fns["FleetRebootTimer"]
	require.Equal(t, []binding{{Type: "timerTrigger", Direction: "in", Name: "timer", Schedule: "%FLEET_REBOOT_SCHEDULE%"}}, timer.Bindings)
	require.Nil(t, timer.Retry, "a failed run is retried by the next one")
}

// TestHTTPFunctionsAreServed checks every HTTP function against the
// handler: forwarding eligibility (one httpTrigger "req" + one http out
// "res"), authLevel, the public route in both modes, and the OpenAPI path.
func TestHTTPFunctionsAreServed(t *testing.T) {
	client, err := handlers.NewHubClient(handlers.Config{ConnectionString: "HostName=h;SharedAccessKeyName=p;SharedAccessKey=c2VjcmV0", Endpoint: "https://127.0.0.1:1"}, nil)
	require.NoError(t, err)
	srv := handlers.NewServer(handlers.Deps{Hub: client})
	var openapi struct {
		BasePath string                                `json:"basePath"`
		Paths    map[string]map[string]json.RawMessage `json:"paths"`
	}
	b, err := os.ReadFile("openapi.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &openapi))
	require.Equal(t, "/api", openapi.BasePath)

	param := regexp.MustCompile(`\{([^}:]+)(:[^}]*)?\}`)
	for name, fn := range readFunctions(t) {
		if !slices.ContainsFunc(fn.Bindings, func(b binding) bool { return b.Type == "httpTrigger" }) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			require.Len(t, fn.Bindings, 2, "forwarding needs exactly one httpTrigger and one http output")
			in, out := fn.Bindings[0], fn.Bindings[1]
			require.Equal(t, "httpTrigger", in.Type)
			require.Equal(t, "req", in.Name)
			require.Equal(t, "function", in.AuthLevel)
			require.Equal(t, "http", out.Type)
			require.Equal(t, "res", out.Name)
			require.Len(t, in.Methods, 1)
			method := strings.ToUpper(in.Methods[0])

			// The OpenAPI document describes the route.
			oaPath := "/" + param.ReplaceAllString(in.Route, "{$1}")
			require.Contains(t, openapi.Paths, oaPath)
			require.Contains(t, openapi.Paths[oaPath], strings.ToLower(method))

			// Forwarded: the public path reaches a handler (anything but the
			// catch-all's NotFound).
			path := "/api/" + param.ReplaceAllString(in.Route, "x")
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
			require.NotContains(t, rec.Body.String(), `"errorCode":"NotFound"`, "%s %s", method, path)

			// Envelope mode: POST /<FunctionName>.
			rec = httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/"+name, bytes.NewReader([]byte("{}"))))
			require.NotContains(t, rec.Body.String(), `"errorCode":"NotFound"`)
		})
	}
}

func TestOpenAPIDocument(t *testing.T) {
	served, err := os.ReadFile("openapi.json")
	require.NoError(t, err)
	docs, err := os.ReadFile(filepath.Join("..", "docs", "openapi.json"))
	require.NoError(t, err)
	require.Equal(t, string(served), string(docs), "docs/openapi.json must be a copy of handlers/openapi.json (the one the app serves)")

	app := newFakeHubApp(t, &fakeHub{status: http.StatusInternalServerError})
	resp, body := app.do(t, http.MethodGet, "/api/openapi.json", "", map[string]string{"X-Forwarded-Proto": "https"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	doc := decodeJSON(t, body)
	require.Equal(t, "2.0", doc["swagger"])
	require.Equal(t, strings.TrimPrefix(app.URL, "http://"), doc["host"])
	require.Equal(t, []any{"https"}, doc["schemes"])

	// Every errorCode the handler can send is documented.
	var spec struct {
		Definitions struct {
			Problem struct {
				Properties struct {
					ErrorCode struct {
						Enum []string `json:"enum"`
					} `json:"errorCode"`
				} `json:"properties"`
			} `json:"Problem"`
		} `json:"definitions"`
	}
	require.NoError(t, json.Unmarshal(served, &spec))
	src, err := os.ReadFile("problem.go")
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`code\w+\s*=\s*"(\w+)"`).FindAllSubmatch(src, -1) {
		require.Contains(t, spec.Definitions.Problem.Properties.ErrorCode.Enum, string(m[1]))
	}
}
