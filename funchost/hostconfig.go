package funchost

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// Defaults the host applies when host.json is silent
// (functions-custom-handler.md §1.1, §1.4, §4).
const (
	defaultRoutePrefix       = "api"
	defaultInitTimeout       = 30 * time.Second
	defaultMaxEventBatchSize = 100
	defaultMaxWaitTime       = time.Minute
	// overridePrefix marks app settings that override host.json values:
	// AzureFunctionsJobHost__customHandler__description__defaultExecutablePath.
	overridePrefix = "AzureFunctionsJobHost__"
)

// hostConfig is what the local host takes from host.json.
type hostConfig struct {
	handler         handlerConfig
	routePrefix     string
	functionTimeout time.Duration // 0: none
	eventHubs       eventHubsConfig
}

// handlerConfig is host.json's customHandler section (or the legacy
// httpWorker section).
type handlerConfig struct {
	executable       string // description.defaultExecutablePath
	workerPath       string // description.defaultWorkerPath
	workerDirectory  string // description.workerDirectory
	workingDirectory string // description.workingDirectory
	arguments        []string
	workerArguments  []string
	// forwarding: HTTP-in/HTTP-out functions get the original request.
	// The legacy httpWorker section always forwards (DefaultHttpWorkerService).
	forwarding bool
	// proxying (enableProxyingHttpRequest, newer hosts) forwards too, but
	// streams the body whatever its length and adds x-ms-invocation-id.
	proxying    bool
	initTimeout time.Duration
	port        int // customHandler.port; 0: a free port per start
}

// eventHubsConfig is host.json's extensions.eventHubs section.
type eventHubsConfig struct {
	maxBatch int
	minBatch int
	maxWait  time.Duration
	// initial is where a consumer starts when it has no checkpoint, which
	// locally is every start: checkpoints live in memory.
	initial localhub.Position
	// initialName describes initial for the start-up log.
	initialName string
}

type hostJSON struct {
	Version         *string
	FunctionTimeout string
	CustomHandler   *handlerJSON `json:"customHandler"`
	HTTPWorker      *handlerJSON `json:"httpWorker"`
	Extensions      struct {
		HTTP struct {
			RoutePrefix *string
		} `json:"http"`
		EventHubs struct {
			MaxEventBatchSize    flexInt
			MinEventBatchSize    flexInt
			MaxWaitTime          string
			InitialOffsetOptions struct {
				Type            string
				EnqueuedTimeUTC string `json:"enqueuedTimeUtc"`
			}
		} `json:"eventHubs"`
	}
}

type handlerJSON struct {
	Description struct {
		DefaultExecutablePath string
		DefaultWorkerPath     string
		WorkerDirectory       string
		WorkingDirectory      string
		Arguments             []string
		WorkerArguments       []string
	}
	EnableForwardingHTTPRequest flexBool `json:"enableForwardingHttpRequest"`
	EnableProxyingHTTPRequest   flexBool `json:"enableProxyingHttpRequest"`
	InitializationTimeout       string
	Port                        flexInt
}

// loadHostConfig reads root/host.json with the AzureFunctionsJobHost__…
// overrides of s applied.
func loadHostConfig(root string, s settings) (hostConfig, error) {
	b, err := os.ReadFile(filepath.Join(root, "host.json"))
	if err != nil {
		return hostConfig{}, fmt.Errorf("read host.json: %w", err)
	}
	return parseHostConfig(b, s)
}

// parseHostConfig parses host.json text with the overrides of s applied.
func parseHostConfig(b []byte, s settings) (hostConfig, error) {
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		return hostConfig{}, fmt.Errorf("host.json: %w", err)
	}
	for k, v := range s {
		if len(k) > len(overridePrefix) && strings.EqualFold(k[:len(overridePrefix)], overridePrefix) {
			tree = setPath(tree, strings.Split(k[len(overridePrefix):], "__"), v).(map[string]any)
		}
	}
	b, err := json.Marshal(tree)
	if err != nil {
		return hostConfig{}, fmt.Errorf("host.json: %w", err)
	}
	var hj hostJSON
	if err := json.Unmarshal(b, &hj); err != nil {
		return hostConfig{}, fmt.Errorf("host.json: %w", err)
	}
	return hj.config()
}

func (hj hostJSON) config() (hostConfig, error) {
	if hj.Version == nil {
		return hostConfig{}, errors.New("host.json: the required 'version' property is missing (use \"2.0\")")
	}
	if *hj.Version != "2.0" {
		return hostConfig{}, fmt.Errorf("host.json: version %q is not supported (use \"2.0\")", *hj.Version)
	}
	c := hostConfig{routePrefix: defaultRoutePrefix}
	if p := hj.Extensions.HTTP.RoutePrefix; p != nil {
		c.routePrefix = strings.Trim(*p, "/")
	}
	var err error
	if hj.FunctionTimeout != "" {
		if c.functionTimeout, err = parseTimeSpan(hj.FunctionTimeout); err != nil {
			return hostConfig{}, fmt.Errorf("host.json functionTimeout: %w", err)
		}
	}
	if c.handler, err = hj.handler(); err != nil {
		return hostConfig{}, err
	}
	if c.eventHubs, err = hj.eventHubs(); err != nil {
		return hostConfig{}, err
	}
	return c, nil
}

func (hj hostJSON) handler() (handlerConfig, error) {
	section, legacy := hj.CustomHandler, false
	if section == nil {
		section, legacy = hj.HTTPWorker, true
	}
	if section == nil || section.Description.DefaultExecutablePath == "" {
		return handlerConfig{}, errors.New("host.json: customHandler.description.defaultExecutablePath is required: this local host runs custom handlers only")
	}
	d := section.Description
	h := handlerConfig{
		executable:       d.DefaultExecutablePath,
		workerPath:       d.DefaultWorkerPath,
		workerDirectory:  d.WorkerDirectory,
		workingDirectory: d.WorkingDirectory,
		arguments:        d.Arguments,
		workerArguments:  d.WorkerArguments,
		forwarding:       legacy || bool(section.EnableForwardingHTTPRequest),
		proxying:         bool(section.EnableProxyingHTTPRequest),
		initTimeout:      defaultInitTimeout,
		port:             section.Port.Value,
	}
	if section.InitializationTimeout != "" {
		t, err := parseTimeSpan(section.InitializationTimeout)
		if err != nil || t <= 0 {
			return handlerConfig{}, fmt.Errorf("host.json customHandler.initializationTimeout: %q is not a positive TimeSpan", section.InitializationTimeout)
		}
		h.initTimeout = t
	}
	if h.port < 0 || h.port > 65535 {
		return handlerConfig{}, fmt.Errorf("host.json customHandler.port: %d is not a port", h.port)
	}
	return h, nil
}

func (hj hostJSON) eventHubs() (eventHubsConfig, error) {
	eh := hj.Extensions.EventHubs
	c := eventHubsConfig{
		maxBatch:    defaultMaxEventBatchSize,
		minBatch:    1,
		maxWait:     defaultMaxWaitTime,
		initial:     localhub.Position{Earliest: true},
		initialName: "fromStart",
	}
	if eh.MaxEventBatchSize.Set {
		if eh.MaxEventBatchSize.Value < 1 {
			return c, fmt.Errorf("host.json extensions.eventHubs.maxEventBatchSize: %d must be at least 1", eh.MaxEventBatchSize.Value)
		}
		c.maxBatch = eh.MaxEventBatchSize.Value
	}
	if eh.MinEventBatchSize.Set {
		if eh.MinEventBatchSize.Value < 1 || eh.MinEventBatchSize.Value > c.maxBatch {
			return c, fmt.Errorf("host.json extensions.eventHubs.minEventBatchSize: %d must be from 1 to maxEventBatchSize", eh.MinEventBatchSize.Value)
		}
		c.minBatch = eh.MinEventBatchSize.Value
	}
	if eh.MaxWaitTime != "" {
		d, err := parseTimeSpan(eh.MaxWaitTime)
		if err != nil {
			return c, fmt.Errorf("host.json extensions.eventHubs.maxWaitTime: %w", err)
		}
		c.maxWait = d
	}
	switch t := strings.ToLower(eh.InitialOffsetOptions.Type); t {
	case "", "fromstart":
	case "fromend":
		c.initial, c.initialName = localhub.Position{Latest: true}, "fromEnd"
	case "fromenqueuedtime":
		at, err := time.Parse(time.RFC3339Nano, eh.InitialOffsetOptions.EnqueuedTimeUTC)
		if err != nil {
			// .NET also takes the time without a zone; it is UTC here.
			if at, err = time.Parse("2006-01-02T15:04:05.9999999", eh.InitialOffsetOptions.EnqueuedTimeUTC); err != nil {
				return c, fmt.Errorf("host.json extensions.eventHubs.initialOffsetOptions.enqueuedTimeUtc: %q is not a UTC time", eh.InitialOffsetOptions.EnqueuedTimeUTC)
			}
		}
		c.initial = localhub.Position{EnqueuedTime: &at, Inclusive: true}
		c.initialName = "fromEnqueuedTime " + at.UTC().Format(time.RFC3339Nano)
	default:
		return c, fmt.Errorf("host.json extensions.eventHubs.initialOffsetOptions.type: %q is not fromStart, fromEnd or fromEnqueuedTime", eh.InitialOffsetOptions.Type)
	}
	return c, nil
}

// setPath sets path in a decoded JSON tree, matching object keys
// case-insensitively and creating objects as needed; a numeric segment
// indexes an array (arguments__0). It returns the updated node.
func setPath(node any, path []string, value string) any {
	if len(path) == 0 {
		return value
	}
	key := path[0]
	if arr, ok := node.([]any); ok {
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i > 1024 {
			return node
		}
		for len(arr) <= i {
			arr = append(arr, nil)
		}
		arr[i] = setPath(arr[i], path[1:], value)
		return arr
	}
	obj, ok := node.(map[string]any)
	if !ok || obj == nil {
		obj = map[string]any{}
	}
	for k := range obj {
		if strings.EqualFold(k, key) {
			key = k
			break
		}
	}
	child := obj[key]
	if child == nil && len(path) > 1 {
		if _, err := strconv.Atoi(path[1]); err == nil {
			child = []any{}
		}
	}
	obj[key] = setPath(child, path[1:], value)
	return obj
}
