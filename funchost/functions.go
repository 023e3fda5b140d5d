package funchost

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Names the host accepts (functions-custom-handler.md §2.3, Utility.cs).
var (
	functionNameRE = regexp.MustCompile(`(?i)^[a-z][a-z0-9_\-]{0,127}$`)
	bindingNameRE  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9]{0,127}$`)
)

// Binding types and directions the local host understands.
const (
	typeHTTPTrigger     = "httptrigger"
	typeHTTP            = "http"
	typeEventHubTrigger = "eventhubtrigger"
	directionIn         = "in"
	directionOut        = "out"
	returnBinding       = "$return"
)

// function is one indexed function: a folder of the script root with a
// function.json whose bindings the local host can run.
type function struct {
	name     string
	trigger  binding
	outputs  []binding
	retry    *retryPolicy
	disabled bool

	// HTTP triggers.
	route   routeTemplate
	methods []string // upper case; empty: every method
	// httpOut is the http output binding, nil if there is none.
	httpOut *binding
	// forward: the request goes to the handler as-is (forwarding or
	// proxying mode, exactly one httpTrigger and one http output).
	forward bool

	// Event Hubs triggers.
	eventHub *eventHubTrigger

	// Timer triggers (timer.go).
	timer *timerTrigger
}

type binding struct {
	Type          string
	Direction     string
	Name          string
	AuthLevel     string
	Methods       []string
	Route         string
	DataType      string
	Cardinality   string
	EventHubName  string
	Path          string // older name of eventHubName
	Connection    string
	ConsumerGroup string
	// Timer triggers (timer.go).
	Schedule     string
	RunOnStartup flexBool
	UseMonitor   *flexBool
}

type functionJSON struct {
	Bindings []binding
	Retry    *retryJSON
}

func (b binding) is(typ string) bool { return strings.EqualFold(b.Type, typ) }

// loadFunctions indexes the immediate subdirectories of root that hold a
// function.json with bindings, as HostFunctionMetadataProvider does. A
// function the local host cannot run is reported in errs and left out,
// the way the host marks one function in error and runs the rest.
func loadFunctions(root string, cfg hostConfig, s settings) (fns []*function, errs []error, err error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, fmt.Errorf("read script root: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, e.Name(), "function.json"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("function %s: %w", e.Name(), err))
			continue
		}
		fn, err := parseFunction(e.Name(), b, cfg, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("function %s: %w", e.Name(), err))
			continue
		}
		if fn != nil {
			fns = append(fns, fn)
		}
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].name < fns[j].name })
	return fns, errs, nil
}

// parseFunction returns nil, nil for a function.json without bindings,
// which the host does not index.
func parseFunction(name string, raw []byte, cfg hostConfig, s settings) (*function, error) {
	var fj functionJSON
	if err := json.Unmarshal(raw, &fj); err != nil {
		return nil, fmt.Errorf("function.json: %w", err)
	}
	if len(fj.Bindings) == 0 {
		return nil, nil
	}
	if !functionNameRE.MatchString(name) || strings.EqualFold(name, "host") {
		return nil, fmt.Errorf("%q is not a valid function name", name)
	}
	fn := &function{name: name, disabled: s.disabled(name)}
	triggers := 0
	for _, b := range fj.Bindings {
		if b.Name != returnBinding && !bindingNameRE.MatchString(b.Name) {
			return nil, fmt.Errorf("binding name %q is invalid: use letters and digits, starting with a letter", b.Name)
		}
		switch {
		case strings.HasSuffix(strings.ToLower(b.Type), "trigger"):
			triggers++
			fn.trigger = b
		case strings.EqualFold(b.Direction, directionOut) || strings.EqualFold(b.Direction, "inout"):
			fn.outputs = append(fn.outputs, b)
		default:
			return nil, fmt.Errorf("input binding %q of type %q is not supported by the local host", b.Name, b.Type)
		}
	}
	if triggers != 1 {
		return nil, fmt.Errorf("a function needs exactly one trigger binding, found %d", triggers)
	}
	if i := indexOfHTTPOut(fn.outputs); i >= 0 {
		fn.httpOut = &fn.outputs[i]
	}
	if fj.Retry != nil {
		p, err := fj.Retry.policy()
		if err != nil {
			return nil, err
		}
		fn.retry = p
	}
	switch {
	case fn.trigger.is(typeHTTPTrigger):
		return fn, fn.setupHTTP(cfg)
	case fn.trigger.is(typeEventHubTrigger):
		if fn.disabled {
			return fn, nil // a disabled listener needs no connection
		}
		eh, err := newEventHubTrigger(fn.trigger, s)
		if err != nil {
			return nil, err
		}
		fn.eventHub = eh
		return fn, nil
	case fn.trigger.is(typeTimerTrigger):
		if fn.disabled {
			return fn, nil
		}
		t, err := newTimerTrigger(fn.trigger, s)
		if err != nil {
			return nil, err
		}
		fn.timer = t
		return fn, nil
	}
	return nil, fmt.Errorf("trigger type %q is not supported by the local host (httpTrigger, eventHubTrigger and timerTrigger are)", fn.trigger.Type)
}

func indexOfHTTPOut(outputs []binding) int {
	for i, b := range outputs {
		if b.is(typeHTTP) {
			return i
		}
	}
	return -1
}

func (fn *function) setupHTTP(cfg hostConfig) error {
	// No route, or an empty one, means the function's name.
	route := fn.name
	if fn.trigger.Route != "" {
		route = fn.trigger.Route
	}
	var err error
	if fn.route, err = parseRoute(route); err != nil {
		return fmt.Errorf("route %q: %w", route, err)
	}
	for _, m := range fn.trigger.Methods {
		fn.methods = append(fn.methods, strings.ToUpper(strings.TrimSpace(m)))
	}
	// IsHttpInAndOutFunction: exactly the trigger and one http output.
	httpInAndOut := len(fn.outputs) == 1 && fn.httpOut != nil
	fn.forward = httpInAndOut && (cfg.handler.forwarding || cfg.handler.proxying)
	return nil
}

// allows reports whether the trigger accepts method.
func (fn *function) allows(method string) bool {
	if len(fn.methods) == 0 {
		return true
	}
	for _, m := range fn.methods {
		if m == method {
			return true
		}
	}
	return false
}

// retryJSON is function.json's retry section
// (functions-custom-handler.md §3.1).
type retryJSON struct {
	Strategy        string
	MaxRetryCount   flexInt
	DelayInterval   string
	MinimumInterval string
	MaximumInterval string
}

// retryPolicy re-runs a failed invocation: fixedDelay waits delay every
// time, exponentialBackoff doubles from minimum up to maximum.
type retryPolicy struct {
	exponential bool
	// maxRetries is the number of retries after the first attempt; -1
	// retries forever.
	maxRetries       int
	delay            time.Duration
	minimum, maximum time.Duration
}

func (r retryJSON) policy() (*retryPolicy, error) {
	if !r.MaxRetryCount.Set || r.MaxRetryCount.Value < -1 {
		return nil, errors.New("retry: maxRetryCount is required (-1 retries forever)")
	}
	p := &retryPolicy{maxRetries: r.MaxRetryCount.Value}
	var err error
	switch strings.ToLower(r.Strategy) {
	case "fixeddelay":
		if p.delay, err = parseTimeSpan(r.DelayInterval); err != nil {
			return nil, fmt.Errorf("retry: delayInterval: %w", err)
		}
	case "exponentialbackoff":
		p.exponential = true
		if p.minimum, err = parseTimeSpan(r.MinimumInterval); err != nil {
			return nil, fmt.Errorf("retry: minimumInterval: %w", err)
		}
		if p.maximum, err = parseTimeSpan(r.MaximumInterval); err != nil {
			return nil, fmt.Errorf("retry: maximumInterval: %w", err)
		}
		if p.maximum < p.minimum {
			return nil, errors.New("retry: maximumInterval is below minimumInterval")
		}
	default:
		return nil, fmt.Errorf("retry: strategy %q is not fixedDelay or exponentialBackoff", r.Strategy)
	}
	return p, nil
}

// allowsRetry reports whether retry number n (1 for the first retry) may
// run.
func (p *retryPolicy) allowsRetry(n int) bool {
	return p.maxRetries == -1 || n <= p.maxRetries
}

// delayBefore is the wait before retry number n. The SDK's exponential
// strategy adds jitter; this one doubles exactly, so runs are repeatable.
func (p *retryPolicy) delayBefore(n int) time.Duration {
	if !p.exponential {
		return p.delay
	}
	d := p.minimum
	for i := 1; i < n && d < p.maximum; i++ {
		d *= 2
	}
	return min(d, p.maximum)
}
