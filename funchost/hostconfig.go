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
)

// Defaults the host applies when host.json is silent
// (functions-custom-handler.md §1.1, §1.4, §4).
const (
	defaultRoutePrefix       = "api"
	defaultInitTimeout       = 30 * time.Second
	defaultMaxEventBatchSize = 100
	defaultMaxWaitTime       = time.Minute
	defaultPrefetchCount     = 300
	// maxPrefetchCount is the most azeventhubs takes (its session window).
	maxPrefetchCount = 5000
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

// eventHubsConfig is host.json's extensions.eventHubs section, with the
// extension's defaults (functions-custom-handler.md §4; EventHubOptions
// and EventHubsRetryOptions in Azure/azure-sdk-for-net).
type eventHubsConfig struct {
	maxBatch int
	minBatch int
	maxWait  time.Duration
	// prefetch is prefetchCount: events a partition's link may buffer
	// ahead of the invocations; 0 turns prefetching off.
	prefetch int
	// checkpointEvery is batchCheckpointFrequency: invocations per
	// checkpoint.
	checkpointEvery int
	// initial is where a partition starts when it has no checkpoint.
	initial initialOffset
	retry   clientRetry
}

// offsetType is initialOffsetOptions.type.
type offsetType int

const (
	fromStart offsetType = iota
	fromEnd
	fromEnqueuedTime
)

// initialOffset is initialOffsetOptions: where a partition without a
// checkpoint starts (fromStart when host.json is silent, as in the
// extension's InitialOffsetOptions).
type initialOffset struct {
	typ offsetType
	at  time.Time // fromEnqueuedTime: events enqueued at or after this
}

func (o initialOffset) String() string {
	switch o.typ {
	case fromEnd:
		return "fromEnd"
	case fromEnqueuedTime:
		return "fromEnqueuedTime " + o.at.UTC().Format(time.RFC3339Nano)
	}
	return "fromStart"
}

// clientRetry is clientRetryOptions: how the Event Hubs client retries
// its own operations (connecting, receiving) before reporting an error.
// Defaults are EventHubsRetryOptions': three retries, exponential from
// 0.8 s up to one minute, one minute per try.
type clientRetry struct {
	maxRetries int
	delay      time.Duration
	maxDelay   time.Duration
	// tryTimeout bounds each attempt to open a listener (azeventhubs has
	// no per-try timeout of its own).
	tryTimeout time.Duration
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
		EventHubs eventHubsJSON `json:"eventHubs"`
	}
}

// eventHubsJSON is host.json's extensions.eventHubs.
type eventHubsJSON struct {
	MaxEventBatchSize        flexInt
	MinEventBatchSize        flexInt
	MaxWaitTime              string
	PrefetchCount            flexInt
	BatchCheckpointFrequency flexInt
	InitialOffsetOptions     struct {
		Type            string
		EnqueuedTimeUTC string `json:"enqueuedTimeUtc"`
	}
	ClientRetryOptions struct {
		Mode           string
		Delay          string
		MaximumDelay   string
		MaximumRetries flexInt
		TryTimeout     string
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
		maxBatch:        defaultMaxEventBatchSize,
		minBatch:        1,
		maxWait:         defaultMaxWaitTime,
		prefetch:        defaultPrefetchCount,
		checkpointEvery: 1,
		retry:           clientRetry{maxRetries: 3, delay: 800 * time.Millisecond, maxDelay: time.Minute, tryTimeout: time.Minute},
	}
	const key = "host.json extensions.eventHubs."
	if eh.MaxEventBatchSize.Set {
		if eh.MaxEventBatchSize.Value < 1 {
			return c, fmt.Errorf(key+"maxEventBatchSize: %d must be at least 1", eh.MaxEventBatchSize.Value)
		}
		c.maxBatch = eh.MaxEventBatchSize.Value
	}
	if eh.MinEventBatchSize.Set {
		if eh.MinEventBatchSize.Value < 1 || eh.MinEventBatchSize.Value > c.maxBatch {
			return c, fmt.Errorf(key+"minEventBatchSize: %d must be from 1 to maxEventBatchSize", eh.MinEventBatchSize.Value)
		}
		c.minBatch = eh.MinEventBatchSize.Value
	}
	if eh.MaxWaitTime != "" {
		d, err := parseTimeSpan(eh.MaxWaitTime)
		if err != nil {
			return c, fmt.Errorf(key+"maxWaitTime: %w", err)
		}
		c.maxWait = d
	}
	if eh.PrefetchCount.Set {
		if eh.PrefetchCount.Value < 0 || eh.PrefetchCount.Value > maxPrefetchCount {
			return c, fmt.Errorf(key+"prefetchCount: %d must be from 0 to %d locally (the Event Hubs client's limit)", eh.PrefetchCount.Value, maxPrefetchCount)
		}
		c.prefetch = eh.PrefetchCount.Value
	}
	if eh.BatchCheckpointFrequency.Set {
		if eh.BatchCheckpointFrequency.Value < 1 {
			return c, fmt.Errorf(key+"batchCheckpointFrequency: %d must be at least 1", eh.BatchCheckpointFrequency.Value)
		}
		c.checkpointEvery = eh.BatchCheckpointFrequency.Value
	}
	var err error
	if c.initial, err = eh.initialOffset(); err != nil {
		return c, err
	}
	r := eh.ClientRetryOptions
	if r.MaximumRetries.Set {
		if r.MaximumRetries.Value < 0 {
			return c, fmt.Errorf(key+"clientRetryOptions.maximumRetries: %d must not be negative", r.MaximumRetries.Value)
		}
		c.retry.maxRetries = r.MaximumRetries.Value
	}
	for _, d := range []struct {
		name, value string
		to          *time.Duration
	}{{"delay", r.Delay, &c.retry.delay}, {"maximumDelay", r.MaximumDelay, &c.retry.maxDelay}, {"tryTimeout", r.TryTimeout, &c.retry.tryTimeout}} {
		if d.value == "" {
			continue
		}
		if *d.to, err = parseTimeSpan(d.value); err != nil {
			return c, fmt.Errorf(key+"clientRetryOptions.%s: %w", d.name, err)
		}
	}
	switch strings.ToLower(r.Mode) {
	case "", "exponential":
	case "fixed":
		c.retry.maxDelay = c.retry.delay
	default:
		return c, fmt.Errorf(key+"clientRetryOptions.mode: %q is not exponential or fixed", r.Mode)
	}
	if c.retry.maxDelay < c.retry.delay {
		c.retry.maxDelay = c.retry.delay
	}
	if c.retry.tryTimeout <= 0 {
		return c, fmt.Errorf(key+"clientRetryOptions.tryTimeout: %s must be positive", r.TryTimeout)
	}
	return c, nil
}

func (eh eventHubsJSON) initialOffset() (initialOffset, error) {
	o := eh.InitialOffsetOptions
	switch strings.ToLower(o.Type) {
	case "", "fromstart":
		return initialOffset{typ: fromStart}, nil
	case "fromend":
		return initialOffset{typ: fromEnd}, nil
	case "fromenqueuedtime":
		at, err := time.Parse(time.RFC3339Nano, o.EnqueuedTimeUTC)
		if err != nil {
			// .NET also takes the time without a zone; it is UTC here.
			if at, err = time.Parse("2006-01-02T15:04:05.9999999", o.EnqueuedTimeUTC); err != nil {
				return initialOffset{}, fmt.Errorf("host.json extensions.eventHubs.initialOffsetOptions.enqueuedTimeUtc: %q is not a UTC time", o.EnqueuedTimeUTC)
			}
		}
		return initialOffset{typ: fromEnqueuedTime, at: at.UTC()}, nil
	}
	return initialOffset{}, fmt.Errorf("host.json extensions.eventHubs.initialOffsetOptions.type: %q is not fromStart, fromEnd or fromEnqueuedTime", o.Type)
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
