package infra_test

// Drift tests: infra/*.bicep, functions/*/function.json, the handler's Go
// sources and local.settings.sample.json must agree. There is no Bicep CLI or
// Azure here, so the Bicep is read with infra/internal/bicep.

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/infra/internal/bicep"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// repoRoot is the module root, seen from this package's directory.
const repoRoot = ".."

// place says whether a setting must, may or must not appear somewhere.
type place int

const (
	required place = iota
	optional
	forbidden
)

// settingPlaces lists the settings that do not belong in both Azure
// (main.bicep) and local runs (local.settings.sample.json). Every other
// setting the app reads is required in both.
var settingPlaces = map[string]struct {
	azure, local place
	why          string
}{
	"FUNCTIONS_CUSTOMHANDLER_PORT": {forbidden, optional, "set by the Functions host"},
	"FUNCTIONS_HTTPWORKER_PORT":    {forbidden, optional, "set by the Functions host (legacy name)"},
	"IDENTITY_ENDPOINT":            {forbidden, optional, "set by the platform when a managed identity is available"},
	"IOTHUB_ENDPOINT":              {forbidden, required, "local hub only: in Azure the endpoint is https://<IOTHUB_HOSTNAME>"},
	"IOTHUB_CA_FILE":               {forbidden, required, "local hub only: Azure's certificates chain to public roots"},
	"AZURE_CLIENT_ID":              {forbidden, optional, "Azure uses the system-assigned identity; set only for a user-assigned one"},
}

// platformSettings are set by main.bicep for the Functions host, not read by
// the handler.
var platformSettings = []string{
	"AzureWebJobsStorage__accountName",
	"APPLICATIONINSIGHTS_CONNECTION_STRING",
	"APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

// flexRejected are app settings Flex Consumption refuses or ignores (the
// runtime comes from functionAppConfig; key-based storage would be a secret).
var flexRejected = []string{
	"FUNCTIONS_WORKER_RUNTIME",
	"FUNCTIONS_WORKER_RUNTIME_VERSION",
	"FUNCTIONS_EXTENSION_VERSION",
	"WEBSITE_RUN_FROM_PACKAGE",
	"WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
	"WEBSITE_CONTENTSHARE",
	"SCM_DO_BUILD_DURING_DEPLOYMENT",
	"AzureWebJobsStorage",
}

func TestAppSettingsCoverWhatTheHandlerReads(t *testing.T) {
	infra := loadInfra(t)
	sample := loadSample(t)
	read := handlerSettings(t, repoRoot, handlerSources)
	require.NotEmpty(t, read,
		"found no setting read in handlers/ or cmd/handler/ (os.Getenv, os.LookupEnv or getenv(...) "+
			"with a string literal or constant): the function app is not written yet, or it reads "+
			"settings in a way this test cannot see; either way the app settings cannot be checked")

	for _, name := range sortedKeys(read) {
		t.Run(name, func(t *testing.T) {
			checkPlaces(t, name, "read at "+strings.Join(read[name], ", "), infra, sample)
		})
	}

	t.Run("no stale settings in main.bicep", func(t *testing.T) {
		fromFunctions := functionSettings(t)
		for name := range infra.settings {
			_, byHandler := read[name]
			_, byFunctions := fromFunctions[name]
			require.True(t, byHandler || byFunctions || slices.Contains(platformSettings, name),
				"main.bicep sets %s, which neither the handler nor a function.json reads", name)
		}
	})
}

func TestAppSettingsCoverFunctionJSON(t *testing.T) {
	infra := loadInfra(t)
	sample := loadSample(t)
	settings := functionSettings(t)
	require.NotEmpty(t, settings, "no %%SETTING%% or connection found in functions/*/function.json")

	for _, name := range sortedKeys(settings) {
		t.Run(name, func(t *testing.T) {
			checkPlaces(t, name, "used by "+settings[name], infra, sample)
		})
	}
}

// checkPlaces asserts where a setting read by the app is set.
func checkPlaces(t *testing.T, name, usedBy string, infra infraFiles, sample map[string]string) {
	t.Helper()
	want, special := settingPlaces[name]
	if !special {
		want.azure, want.local = required, required
	}
	_, inAzure := infra.settings[name]
	_, inSample := sample[name]
	switch {
	case want.azure == required && !inAzure:
		t.Errorf("%s (%s) is not set in main.bicep's app settings", name, usedBy)
	case want.azure == forbidden && inAzure:
		t.Errorf("main.bicep sets %s, which must stay unset in Azure: %s", name, want.why)
	}
	if want.local == required && !inSample {
		t.Errorf("%s (%s) is missing from local.settings.sample.json", name, usedBy)
	}
}

func TestAppSettingsHoldNoPlainTextSecret(t *testing.T) {
	infra := loadInfra(t)
	connections := functionConnections(t)
	secureParams := map[string]bool{}
	for _, d := range infra.main.All("param") {
		if d.HasDecorator("secure") {
			secureParams[d.Name] = true
		}
	}

	for _, name := range sortedKeys(infra.settings) {
		t.Run(name, func(t *testing.T) {
			if name == "APPLICATIONINSIGHTS_CONNECTION_STRING" {
				// An ingestion endpoint and instrumentation key. Accepted only
				// with local auth off, so it cannot be used without Entra ID.
				requireAppInsightsEntraOnly(t, infra)
				return
			}
			if problem := plainTextSecret(name, infra.settings[name], connections, secureParams); problem != "" {
				t.Error(problem)
			}
		})
	}
}

var keyish = regexp.MustCompile(`(?i)listkeys|listconnectionstrings|primarykey|secondarykey|sharedaccesskey=|accountkey=|sharedaccesssignature|password`)

// plainTextSecret says what is wrong when an app setting's value could hold a
// key in plain text, or returns "". connections are the setting names
// function.json files use as `connection`; secureParams the @secure() params.
func plainTextSecret(name string, value bicep.Expr, connections []string, secureParams map[string]bool) string {
	text := value.Text()
	if keyish.MatchString(text) {
		return fmt.Sprintf("%s = %s puts a key in plain text", name, text)
	}
	for _, n := range value {
		if id, ok := n.(*bicep.Ident); ok && secureParams[id.Name] {
			return fmt.Sprintf("%s = %s copies @secure() param %s into an app setting", name, text, id.Name)
		}
	}
	carriesCredential := slices.Contains(connections, name) ||
		(strings.Contains(strings.ToUpper(name), "CONNECTION") && !isIdentityBased(name))
	if carriesCredential && !isKeyVaultReference(value) {
		return fmt.Sprintf("%s carries a credential, so it must be a @Microsoft.KeyVault(...) reference, not %s", name, text)
	}
	return ""
}

func TestAppSettingsOmitWhatFlexRejects(t *testing.T) {
	infra := loadInfra(t)
	for _, name := range flexRejected {
		_, ok := infra.settings[name]
		require.False(t, ok, "main.bicep sets %s: Flex Consumption rejects or ignores it", name)
	}
}

func TestAppSettingsAreWrittenAsOneResource(t *testing.T) {
	infra := loadInfra(t)
	mod := infra.module(t, "modules/appsettings.bicep")
	res := mod.resourceOfType(t, "Microsoft.Web/sites/config@")
	body, ok := res.Value.Body()
	require.True(t, ok)
	name, _ := body.Get("name")
	got, _ := name.Literal()
	require.Equal(t, "appsettings", got, "the app settings resource must be sites/config 'appsettings'")
	props, _ := body.Get("properties")
	param, ok := props.IdentName()
	require.True(t, ok, "sites/config appsettings properties must be the appSettings parameter, got %s", props.Text())
	_, ok = mod.file.Find("param", param)
	require.True(t, ok)

	fnApp := infra.module(t, "modules/functionapp.bicep")
	site := fnApp.resourceOfType(t, "Microsoft.Web/sites@")
	siteBody, _ := site.Value.Body()
	_, ok = siteBody.Path("properties", "siteConfig", "appSettings")
	require.False(t, ok, "functionapp.bicep must not set siteConfig.appSettings: appsettings.bicep owns them")
}

func TestConsumerGroups(t *testing.T) {
	infra := loadInfra(t)
	sample := loadSample(t)

	hub := infra.module(t, "modules/iothub.bicep")
	cg := hub.resourceOfType(t, "Microsoft.Devices/IotHubs/eventHubEndpoints/ConsumerGroups@")
	loop, ok := cg.Value.Array()
	require.True(t, ok && loop.Loop != nil, "consumer groups must be created by a loop over the consumerGroups parameter")
	header := loop.Loop.Text()
	m := regexp.MustCompile(`^for (\w+) in consumerGroups$`).FindStringSubmatch(header)
	require.NotNil(t, m, "consumer group loop header %q", header)
	body, _ := loop.Body.Body()
	cgName, _ := body.Get("name")
	require.Contains(t, cgName.Text(), "/events/${"+m[1]+"}", "consumer groups must be on the built-in events endpoint")

	groups := map[string]bool{}
	arg, ok := infra.moduleParam(t, "modules/iothub.bicep", "consumerGroups")
	require.True(t, ok, "main.bicep does not pass consumerGroups to the IoT Hub module")
	list, ok := arg.Array()
	require.True(t, ok, "consumerGroups must be an array literal in main.bicep")
	for _, item := range list.Elems {
		v, ok := item.StringValue(infra.resolveMain)
		require.True(t, ok, "consumer group %s does not resolve to a name", item.Text())
		groups[v] = true
	}

	for _, ref := range functionConsumerGroups(t) {
		t.Run(ref.function, func(t *testing.T) {
			azure := ref.value
			if ref.setting != "" {
				v, ok := infra.settings[ref.setting]
				require.True(t, ok, "main.bicep sets no %s (consumerGroup of %s)", ref.setting, ref.function)
				azure, ok = v.StringValue(infra.resolveMain)
				require.True(t, ok, "%s = %s does not resolve to a name", ref.setting, v.Text())
			}
			require.True(t, groups[azure], "%s reads consumer group %q, which main.bicep does not create (it creates %v)", ref.function, azure, sortedKeys(groups))

			if ref.setting == "" {
				return
			}
			local, ok := sample[ref.setting]
			require.True(t, ok, "local.settings.sample.json has no %s", ref.setting)
			require.True(t, groups[local], "local.settings.sample.json uses consumer group %q, which main.bicep does not create (it creates %v)", local, sortedKeys(groups))
			require.NotEqual(t, azure, local, "local runs must not share the deployed app's consumer group %q, or func start and Azure take partitions from each other", azure)
		})
	}
}

func TestIoTHubPolicies(t *testing.T) {
	infra := loadInfra(t)
	hub := infra.module(t, "modules/iothub.bicep")
	res := hub.resourceOfType(t, "Microsoft.Devices/IotHubs@")
	body, _ := res.Value.Body()
	policies, ok := body.Path("properties", "authorizationPolicies")
	require.True(t, ok, "the hub declares no authorizationPolicies")
	list, ok := policies.Array()
	require.True(t, ok)

	rights := map[string]string{}
	for _, item := range list.Elems {
		o, ok := item.Object()
		require.True(t, ok, "policy %s is not an object literal", item.Text())
		name, _ := o.Get("keyName")
		r, _ := o.Get("rights")
		n, ok1 := name.Literal()
		v, ok2 := r.Literal()
		require.True(t, ok1 && ok2, "policy %s needs literal keyName and rights", item.Text())
		rights[n] = v
	}
	// The list replaces the hub's, so the defaults must be repeated; the
	// rights strings must match the API's enum spelling exactly.
	require.Equal(t, map[string]string{
		"iothubowner":                 "RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect",
		"service":                     "ServiceConnect",
		"device":                      "DeviceConnect",
		"registryRead":                "RegistryRead",
		"registryReadWrite":           "RegistryRead, RegistryWrite",
		"serviceAndRegistryRead":      "RegistryRead, ServiceConnect",
		"serviceAndRegistryReadWrite": "RegistryRead, RegistryWrite, ServiceConnect",
	}, rights)

	// The Event Hub-compatible connection string must come from a policy that
	// can receive events.
	kv := infra.module(t, "modules/keyvault.bicep")
	policy, ok := kv.file.Find("param", "eventHubPolicyName")
	require.True(t, ok)
	name, ok := policy.Value.Literal()
	require.True(t, ok)
	if arg, ok := infra.moduleParam(t, "modules/keyvault.bicep", "eventHubPolicyName"); ok {
		name, ok = arg.StringValue(infra.resolveMain)
		require.True(t, ok)
	}
	require.Contains(t, rights[name], "ServiceConnect", "the events connection string uses policy %q", name)

	// The app's own connection string (iotHubServiceAuth =
	// sharedAccessPolicy) comes from a policy with exactly what it does:
	// direct methods, twin writes and queries (ServiceConnect), jobs for
	// fleet reboots (RegistryRead, RegistryWrite), and no DeviceConnect.
	policy, ok = kv.file.Find("param", "servicePolicyName")
	require.True(t, ok)
	service, ok := policy.Value.Literal()
	require.True(t, ok)
	if arg, ok := infra.moduleParam(t, "modules/keyvault.bicep", "servicePolicyName"); ok {
		service, ok = arg.StringValue(infra.resolveMain)
		require.True(t, ok)
	}
	require.Equal(t, "RegistryRead, RegistryWrite, ServiceConnect", rights[service], "the app's connection string uses policy %q", service)

	// make run's hub has the same policies, so the app meets the same rights
	// locally as in Azure.
	hubNames := localhubtest.New(t, nil).Policies()
	require.ElementsMatch(t, sortedKeys(rights), hubNames, "the local hub's default policies and infra/modules/iothub.bicep's differ")
}

func TestIoTHubRouting(t *testing.T) {
	infra := loadInfra(t)
	hub := infra.module(t, "modules/iothub.bicep")
	res := hub.resourceOfType(t, "Microsoft.Devices/IotHubs@")
	body, _ := res.Value.Body()

	routes, ok := body.Path("properties", "routing", "routes")
	require.True(t, ok, "the hub declares no routes")
	list, ok := routes.Array()
	require.True(t, ok)
	var twinRoute bool
	for _, item := range list.Elems {
		o, ok := item.Object()
		if ok && routeMatches(o, "TwinChangeEvents") {
			twinRoute = true
		}
	}
	require.True(t, twinRoute, "no enabled route sends TwinChangeEvents to the events endpoint")

	fallback, ok := body.Path("properties", "routing", "fallbackRoute")
	require.True(t, ok, "no fallbackRoute: it is disabled when omitted, and telemetry stops reaching events once a route exists")
	o, ok := fallback.Object()
	require.True(t, ok)
	require.True(t, routeMatches(o, "DeviceMessages"), "the fallback route must be enabled and send DeviceMessages to events: %s", fallback.Text())

	sku, ok := hub.file.Find("param", "skuName")
	require.True(t, ok)
	for _, basic := range []string{"B1", "B2", "B3"} {
		require.NotContains(t, sku.String(), "'"+basic+"'", "Basic tiers have no direct methods or twins")
	}
}

// routeMatches reports whether a route object is enabled and sends source to
// the built-in events endpoint.
func routeMatches(o *bicep.Object, source string) bool {
	src, _ := o.Get("source")
	enabled, _ := o.Get("isEnabled")
	endpoints, _ := o.Get("endpointNames")
	s, _ := src.Literal()
	list, ok := endpoints.Array()
	if !ok || len(list.Elems) != 1 {
		return false
	}
	ep, _ := list.Elems[0].Literal()
	return s == source && enabled.Text() == "true" && ep == "events"
}

func TestHTTPFunctionsRequireAFunctionKey(t *testing.T) {
	var httpFunctions int
	for name, bindings := range loadFunctions(t) {
		for _, b := range bindings {
			if b["type"] != "httpTrigger" {
				continue
			}
			httpFunctions++
			require.Equal(t, "function", b["authLevel"], "%s: httpTrigger authLevel must be \"function\" (set explicitly)", name)
		}
	}
	require.NotZero(t, httpFunctions, "no httpTrigger in functions/*/function.json")
}

// requireAppInsightsEntraOnly asserts telemetry ingestion needs Entra ID: local
// auth off on the component and the app told to authenticate.
func requireAppInsightsEntraOnly(t *testing.T, infra infraFiles) {
	t.Helper()
	mon := infra.module(t, "modules/monitoring.bicep")
	res := mon.resourceOfType(t, "Microsoft.Insights/components@")
	body, _ := res.Value.Body()
	disabled, ok := body.Path("properties", "DisableLocalAuth")
	require.True(t, ok && disabled.Text() == "true", "APPLICATIONINSIGHTS_CONNECTION_STRING is only acceptable with DisableLocalAuth: true")
	auth, ok := infra.settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
	require.True(t, ok, "APPLICATIONINSIGHTS_AUTHENTICATION_STRING must be set when local auth is off")
	v, _ := auth.Literal()
	require.Contains(t, v, "Authorization=AAD")
}

func isKeyVaultReference(e bicep.Expr) bool {
	n, ok := e.Single()
	if !ok {
		return false
	}
	s, ok := n.(*bicep.Str)
	return ok && strings.HasPrefix(s.Raw, "'@Microsoft.KeyVault(") && strings.HasSuffix(s.Raw, ")'")
}

// isIdentityBased reports whether a setting is one part of an identity-based
// connection (<CONNECTION>__accountName and friends), which holds no secret.
func isIdentityBased(name string) bool {
	for _, suffix := range []string{"__accountName", "__fullyQualifiedNamespace", "__serviceUri", "__blobServiceUri", "__queueServiceUri", "__tableServiceUri", "__credential", "__clientId"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// infraFiles holds the parsed infra/ directory.
type infraFiles struct {
	main     *bicep.File
	params   *bicep.File
	modules  map[string]*bicep.File // by path as main.bicep writes it
	settings map[string]bicep.Expr  // app settings main.bicep passes to the app
}

type bicepModule struct {
	path string
	file *bicep.File
}

func loadInfra(t *testing.T) infraFiles {
	t.Helper()
	infra := infraFiles{
		main:    parseFile(t, "main.bicep"),
		params:  parseFile(t, "main.bicepparam"),
		modules: map[string]*bicep.File{},
	}
	for _, m := range infra.main.All("module") {
		infra.modules[m.Type] = parseFile(t, filepath.FromSlash(m.Type))
	}

	arg, ok := infra.moduleParam(t, "modules/appsettings.bicep", "appSettings")
	require.True(t, ok, "main.bicep passes no appSettings to modules/appsettings.bicep")
	infra.settings = map[string]bicep.Expr{}
	for _, p := range arg.ObjectEntries(infra.resolveMain) {
		require.NotContains(t, infra.settings, p.Key, "app setting %s is set twice", p.Key)
		infra.settings[p.Key] = p.Value
	}
	require.NotEmpty(t, infra.settings, "no app settings found in %s", arg.Text())
	return infra
}

func parseFile(t *testing.T, name string) *bicep.File {
	t.Helper()
	src, err := os.ReadFile(name)
	require.NoError(t, err)
	f, err := bicep.Parse(string(src))
	require.NoError(t, err, "parse infra/%s", name)
	return f
}

// resolveMain gives the value of a var or param of main.bicep, preferring the
// value main.bicepparam sets.
func (in infraFiles) resolveMain(name string) (bicep.Expr, bool) {
	if d, ok := in.main.Find("var", name); ok {
		return d.Value, true
	}
	if _, ok := in.main.Find("param", name); !ok {
		return nil, false
	}
	if d, ok := in.params.Find("param", name); ok {
		return d.Value, true
	}
	d, _ := in.main.Find("param", name)
	return d.Value, d.Value != nil
}

func (in infraFiles) module(t *testing.T, path string) bicepModule {
	t.Helper()
	f, ok := in.modules[path]
	require.True(t, ok, "main.bicep does not use %s", path)
	return bicepModule{path: path, file: f}
}

// moduleParam returns the expression main.bicep passes as a module parameter.
func (in infraFiles) moduleParam(t *testing.T, path, param string) (bicep.Expr, bool) {
	t.Helper()
	for _, m := range in.main.All("module") {
		if m.Type != path {
			continue
		}
		body, ok := m.Value.Body()
		require.True(t, ok, "module %s has no body", m.Name)
		return body.Path("params", param)
	}
	t.Fatalf("main.bicep does not use %s", path)
	return nil, false
}

func (m bicepModule) resourceOfType(t *testing.T, typePrefix string) bicep.Decl {
	t.Helper()
	var found []bicep.Decl
	for _, d := range m.file.All("resource") {
		if strings.HasPrefix(d.Type, typePrefix) {
			found = append(found, d)
		}
	}
	require.Len(t, found, 1, "%s: want one %s resource", m.path, typePrefix)
	return found[0]
}

func loadSample(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "local.settings.sample.json"))
	require.NoError(t, err)
	var sample struct {
		Values map[string]string `json:"Values"`
	}
	require.NoError(t, json.Unmarshal(data, &sample), "local.settings.sample.json")
	return sample.Values
}

// loadFunctions returns each function folder's bindings.
func loadFunctions(t *testing.T) map[string][]map[string]any {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot, "functions", "*", "function.json"))
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no functions/*/function.json")
	out := map[string][]map[string]any{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		var fn struct {
			Bindings []map[string]any `json:"bindings"`
		}
		require.NoError(t, json.Unmarshal(data, &fn), p)
		out[filepath.Base(filepath.Dir(p))] = fn.Bindings
	}
	return out
}

var percentSetting = regexp.MustCompile(`%([A-Za-z0-9_.]+)%`)

// functionSettings returns every app setting function.json files name:
// %SETTING% references anywhere in a binding, and `connection` values.
func functionSettings(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for fn, bindings := range loadFunctions(t) {
		for _, b := range bindings {
			for key, v := range b {
				s, ok := v.(string)
				if !ok {
					continue
				}
				for _, m := range percentSetting.FindAllStringSubmatch(s, -1) {
					out[m[1]] = fn + " " + key
				}
				if key == "connection" && s != "" {
					out[s] = fn + " connection"
				}
			}
		}
	}
	return out
}

func functionConnections(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, bindings := range loadFunctions(t) {
		for _, b := range bindings {
			if s, ok := b["connection"].(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

type consumerGroupRef struct {
	function string
	setting  string // set when consumerGroup is %SETTING%
	value    string // set when consumerGroup is a literal
}

func functionConsumerGroups(t *testing.T) []consumerGroupRef {
	t.Helper()
	var out []consumerGroupRef
	for fn, bindings := range loadFunctions(t) {
		for _, b := range bindings {
			if b["type"] != "eventHubTrigger" {
				continue
			}
			cg, _ := b["consumerGroup"].(string)
			require.NotEmpty(t, cg, "%s: set consumerGroup; $Default is shared with every other reader", fn)
			if m := percentSetting.FindStringSubmatch(cg); m != nil && m[0] == cg {
				out = append(out, consumerGroupRef{function: fn, setting: m[1]})
			} else {
				out = append(out, consumerGroupRef{function: fn, value: cg})
			}
		}
	}
	require.NotEmpty(t, out, "no eventHubTrigger in functions/*/function.json")
	return out
}

// handlerSources are the directories whose Go code runs in the function app.
var handlerSources = []string{"handlers", filepath.Join("cmd", "handler")}

// handlerSettings returns the settings Go code under root/dirs reads, with
// where: calls named Getenv, LookupEnv or getenv (os.Getenv, a getenv func
// parameter, a cfg.getenv method) whose first argument is a string literal or
// a string constant, and `env:"NAME"` struct tags. Test files are ignored.
func handlerSettings(t *testing.T, root string, dirs []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			switch {
			case os.IsNotExist(err):
				return fs.SkipDir
			case err != nil:
				return err
			case d.IsDir() && d.Name() == "testdata":
				return fs.SkipDir
			case d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go"):
				return nil
			}
			f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			files = append(files, f)
			return nil
		})
		require.NoError(t, err)
	}

	consts := stringConstants(files)
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if !isGetenv(n.Fun) || len(n.Args) == 0 {
					return true
				}
				if name, ok := stringArg(n.Args[0], consts); ok {
					out[name] = append(out[name], relPos(fset, root, n.Pos()))
				}
			case *ast.Field:
				if n.Tag == nil {
					return true
				}
				tag, err := strconv.Unquote(n.Tag.Value)
				if err != nil {
					return true
				}
				if name, _, _ := strings.Cut(reflect.StructTag(tag).Get("env"), ","); name != "" {
					out[name] = append(out[name], relPos(fset, root, n.Pos()))
				}
			}
			return true
		})
	}
	return out
}

func isGetenv(fun ast.Expr) bool {
	var name string
	switch f := fun.(type) {
	case *ast.Ident:
		name = f.Name
	case *ast.SelectorExpr:
		name = f.Sel.Name
	default:
		return false
	}
	switch strings.ToLower(name) {
	case "getenv", "lookupenv":
		return true
	}
	return false
}

// stringConstants maps constant names (Name, and Name for pkg.Name too) to
// their string values. Names are not package-qualified: good enough for one
// small app.
func stringConstants(files []*ast.File) map[string]string {
	consts := map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if v, err := strconv.Unquote(lit.Value); err == nil {
							consts[name.Name] = v
						}
					}
				}
			}
		}
	}
	return consts
}

func stringArg(arg ast.Expr, consts map[string]string) (string, bool) {
	switch a := arg.(type) {
	case *ast.BasicLit:
		if a.Kind != token.STRING {
			return "", false
		}
		v, err := strconv.Unquote(a.Value)
		return v, err == nil
	case *ast.Ident:
		v, ok := consts[a.Name]
		return v, ok
	case *ast.SelectorExpr:
		v, ok := consts[a.Sel.Name]
		return v, ok
	}
	return "", false
}

func relPos(fset *token.FileSet, root string, pos token.Pos) string {
	p := fset.Position(pos)
	rel, err := filepath.Rel(root, p.Filename)
	if err != nil {
		rel = p.Filename
	}
	return filepath.ToSlash(rel) + ":" + strconv.Itoa(p.Line)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
