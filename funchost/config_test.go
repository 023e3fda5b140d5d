package funchost

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseTimeSpan(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"00:00:05", 5 * time.Second, false},
		{"00:05:00", 5 * time.Minute, false},
		{"00:10", 10 * time.Minute, false},
		{"00:00:00.050", 50 * time.Millisecond, false},
		{"00:00:01.1234567", time.Second + 123456700*time.Nanosecond, false},
		{"1.02:03:04", 26*time.Hour + 3*time.Minute + 4*time.Second, false},
		{"2", 48 * time.Hour, false},
		{" 00:00:01 ", time.Second, false},
		{"", 0, true},
		{"-00:00:01", 0, true},
		{"24:00:00", 0, true},
		{"00:60:00", 0, true},
		{"00:00:60", 0, true},
		{"00:00:00.12345678", 0, true},
		{"5s", 0, true},
		{"1:2:3:4", 0, true},
		{"a.00:00:00", 0, true},
		{"106750", 106750 * 24 * time.Hour, false},
		{"106751", 0, true},
		{"99999999.00:00:00", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTimeSpan(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// FuzzParseTimeSpan: whatever parses is non-negative and survives a
// format-parse round trip.
func FuzzParseTimeSpan(f *testing.F) {
	for _, s := range []string{"00:00:05", "1.00:00:00.5", "3", "23:59:59.9999999", "-1", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseTimeSpan(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("parseTimeSpan(%q) = %v, negative", s, d)
		}
		days := d / (24 * time.Hour)
		rest := d - days*24*time.Hour
		again := fmt.Sprintf("%d.%02d:%02d:%02d.%07d", days, rest/time.Hour, rest%time.Hour/time.Minute, rest%time.Minute/time.Second, rest%time.Second/100)
		d2, err := parseTimeSpan(again)
		if err != nil || d2 != d {
			t.Fatalf("round trip of %q via %q = %v, %v; want %v", s, again, d2, err, d)
		}
	})
}

func TestSettings(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "local.settings.json"), `{"IsEncrypted":false,"Values":{"A":"file","B":"file","N":null,"T":true}}`)
	s, err := loadSettings(root, []string{"A=env", "C=env", "PATH=/bin", "bad"}, map[string]string{"b": "option"})
	require.NoError(t, err)
	tests := []struct{ key, want string }{
		{"A", "file"},   // local.settings.json over the environment
		{"B", "option"}, // Options.Settings over the file, keys case-insensitive
		{"C", "env"},
		{"c", "env"},
		{"N", ""},
		{"T", "true"},
	}
	for _, tt := range tests {
		got, ok := s.get(tt.key)
		require.True(t, ok, tt.key)
		require.Equal(t, tt.want, got, tt.key)
	}
	require.Len(t, s.environ(), 6, "one entry per key whatever its case")

	write(t, filepath.Join(root, "local.settings.json"), `{"IsEncrypted":true,"Values":{}}`)
	_, err = loadSettings(root, nil, nil)
	require.ErrorContains(t, err, "IsEncrypted")
}

func TestDisabledSetting(t *testing.T) {
	tests := []struct {
		value string
		want  bool
	}{{"true", true}, {"TRUE", true}, {" 1 ", true}, {"false", false}, {"0", false}, {"yes", false}, {"", false}}
	for _, tt := range tests {
		s := settings{"azurewebjobs.f.disabled": tt.value}
		require.Equal(t, tt.want, s.disabled("F"), "%q", tt.value)
	}
}

func TestResolveBindingExpression(t *testing.T) {
	s := settings{"HUB": "myhub", "GROUP": "functions"}
	tests := []struct{ in, want, wantErr string }{
		{"%HUB%", "myhub", ""},
		{"plain", "plain", ""},
		{"%HUB%-%GROUP%", "myhub-functions", ""},
		{"%hub%", "myhub", ""},
		{"%MISSING%", "", "'%MISSING%' does not resolve"},
		{"%HUB", "", "unterminated"},
		{"%%", "", "does not resolve"},
	}
	for _, tt := range tests {
		got, err := resolveBindingExpression(tt.in, s)
		if tt.wantErr != "" {
			require.ErrorContains(t, err, tt.wantErr, tt.in)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tt.want, got)
	}
}

func TestLoadHostConfig(t *testing.T) {
	base := `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`
	tests := []struct {
		name     string
		hostJSON string
		settings settings
		check    func(t *testing.T, c hostConfig)
		wantErr  string
	}{
		{name: "defaults", hostJSON: base, check: func(t *testing.T, c hostConfig) {
			require.Equal(t, "api", c.routePrefix)
			require.False(t, c.handler.forwarding)
			require.Equal(t, 30*time.Second, c.handler.initTimeout)
			require.Equal(t, 100, c.eventHubs.maxBatch)
			require.Equal(t, fromStart, c.eventHubs.initial.typ, "fromStart, as the extension's InitialOffsetOptions")
			require.Equal(t, 1, c.eventHubs.minBatch)
			require.Equal(t, time.Minute, c.eventHubs.maxWait)
			require.Equal(t, 300, c.eventHubs.prefetch)
			require.Equal(t, 1, c.eventHubs.checkpointEvery)
			require.Equal(t, clientRetry{maxRetries: 3, delay: 800 * time.Millisecond, maxDelay: time.Minute, tryTimeout: time.Minute}, c.eventHubs.retry, "EventHubsRetryOptions' defaults")
			require.Zero(t, c.functionTimeout)
		}},
		{name: "repository-style", hostJSON: `{"version":"2.0","functionTimeout":"00:10:00",
			"extensions":{"http":{"routePrefix":"/v1/"},"eventHubs":{"maxEventBatchSize":7,"initialOffsetOptions":{"type":"fromEnd"}}},
			"customHandler":{"description":{"defaultExecutablePath":"handler","arguments":["a"]},"enableForwardingHttpRequest":true,"initializationTimeout":"00:00:02"}}`,
			check: func(t *testing.T, c hostConfig) {
				require.Equal(t, "v1", c.routePrefix)
				require.True(t, c.handler.forwarding)
				require.Equal(t, 2*time.Second, c.handler.initTimeout)
				require.Equal(t, 10*time.Minute, c.functionTimeout)
				require.Equal(t, 7, c.eventHubs.maxBatch)
				require.Equal(t, fromEnd, c.eventHubs.initial.typ)
			}},
		{name: "overrides from settings", hostJSON: base, settings: settings{
			"AzureFunctionsJobHost__customHandler__enableForwardingHttpRequest":        "true",
			"azurefunctionsjobhost__CUSTOMHANDLER__description__defaultExecutablePath": "other",
			"AzureFunctionsJobHost__customHandler__description__arguments__1":          "second",
			"AzureFunctionsJobHost__extensions__http__routePrefix":                     "",
			"AzureFunctionsJobHost__extensions__eventHubs__maxEventBatchSize":          "5",
		}, check: func(t *testing.T, c hostConfig) {
			require.True(t, c.handler.forwarding)
			require.Equal(t, "other", c.handler.executable)
			require.Equal(t, []string{"", "second"}, c.handler.arguments)
			require.Equal(t, "", c.routePrefix)
			require.Equal(t, 5, c.eventHubs.maxBatch)
		}},
		{name: "legacy httpWorker forwards", hostJSON: `{"version":"2.0","httpWorker":{"description":{"defaultExecutablePath":"h"}}}`,
			check: func(t *testing.T, c hostConfig) { require.True(t, c.handler.forwarding) }},
		{name: "fromEnqueuedTime", hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"}},
			"extensions":{"eventHubs":{"initialOffsetOptions":{"type":"FromEnqueuedTime","enqueuedTimeUtc":"2025-01-31T08:00:00Z"}}}}`,
			check: func(t *testing.T, c hostConfig) {
				require.Equal(t, initialOffset{typ: fromEnqueuedTime, at: time.Date(2025, 1, 31, 8, 0, 0, 0, time.UTC)}, c.eventHubs.initial)
			}},
		{name: "event hubs settings", hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"}},
			"extensions":{"eventHubs":{"prefetchCount":0,"batchCheckpointFrequency":"3","minEventBatchSize":5,"maxWaitTime":"00:00:02",
			"clientRetryOptions":{"mode":"fixed","delay":"00:00:00.5","maximumDelay":"00:00:10","maximumRetries":0,"tryTimeout":"00:01:00"}}}}`,
			check: func(t *testing.T, c hostConfig) {
				eh := c.eventHubs
				require.Equal(t, 0, eh.prefetch)
				require.Equal(t, int32(-1), prefetchOption(eh.prefetch), "0 turns prefetching off")
				require.Equal(t, 3, eh.checkpointEvery)
				require.Equal(t, 5, eh.minBatch)
				require.Equal(t, 2*time.Second, eh.maxWait)
				require.Equal(t, clientRetry{maxRetries: 0, delay: 500 * time.Millisecond, maxDelay: 500 * time.Millisecond, tryTimeout: time.Minute}, eh.retry, "fixed: every delay is delay")
				o := eh.retry.options()
				require.Equal(t, int32(-1), o.MaxRetries, "no retries (azeventhubs reads 0 as three)")
			}},
		{name: "bad prefetch", hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"}},"extensions":{"eventHubs":{"prefetchCount":6000}}}`, wantErr: "prefetchCount"},
		{name: "bad checkpoint frequency", hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"}},"extensions":{"eventHubs":{"batchCheckpointFrequency":0}}}`, wantErr: "batchCheckpointFrequency"},
		{name: "bad retry mode", hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"}},"extensions":{"eventHubs":{"clientRetryOptions":{"mode":"linear"}}}}`, wantErr: "clientRetryOptions.mode"},
		{name: "no version", hostJSON: `{"customHandler":{"description":{"defaultExecutablePath":"h"}}}`, wantErr: "'version'"},
		{name: "old version", hostJSON: `{"version":"1.0","customHandler":{"description":{"defaultExecutablePath":"h"}}}`, wantErr: `"1.0"`},
		{name: "no custom handler", hostJSON: `{"version":"2.0"}`, wantErr: "defaultExecutablePath is required"},
		{name: "bad batch size", hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"}},"extensions":{"eventHubs":{"maxEventBatchSize":0}}}`, wantErr: "maxEventBatchSize"},
		{name: "bad offset type", hostJSON: `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"}},"extensions":{"eventHubs":{"initialOffsetOptions":{"type":"latest"}}}}`, wantErr: "fromStart, fromEnd"},
		{name: "bad timeout", hostJSON: `{"version":"2.0","functionTimeout":"10m","customHandler":{"description":{"defaultExecutablePath":"h"}}}`, wantErr: "functionTimeout"},
		{name: "not JSON", hostJSON: `{`, wantErr: "host.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, filepath.Join(root, "host.json"), tt.hostJSON)
			c, err := loadHostConfig(root, tt.settings)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

func TestLoadFunctions(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"Good":        infoFunction,
		"Envelope":    envelopeFunction,
		"NoBindings":  `{"bindings":[]}`,
		"bad.name":    infoFunction,
		"BadBinding":  `{"bindings":[{"type":"httpTrigger","direction":"in","name":"my_req"}]}`,
		"TwoTriggers": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"a"},{"type":"timerTrigger","direction":"in","name":"b"}]}`,
		"Timer":       `{"bindings":[{"type":"timerTrigger","direction":"in","name":"t","schedule":"0 * * * * *"}]}`,
		"Queue":       `{"bindings":[{"type":"queueTrigger","direction":"in","name":"q","queueName":"x"}]}`,
		"BadRoute":    `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"a/{b}.{c}"}]}`,
		"EventsNoSet": `{"bindings":[{"type":"eventHubTrigger","direction":"in","name":"e","eventHubName":"%NOPE%","connection":"C"}]}`,
		"EventsOff":   `{"bindings":[{"type":"eventHubTrigger","direction":"in","name":"e","eventHubName":"%NOPE%","connection":"C"}]}`,
		"Events":      `{"bindings":[{"type":"eventHubTrigger","direction":"in","name":"e","eventHubName":"ignored","connection":"C","cardinality":"many","dataType":"binary"}],"retry":{"strategy":"exponentialBackoff","maxRetryCount":-1,"minimumInterval":"00:00:01","maximumInterval":"00:00:05"}}`,
		"BadRetry":    `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"}],"retry":{"strategy":"linear","maxRetryCount":1}}`,
	}
	for name, fj := range files {
		write(t, filepath.Join(root, name, "function.json"), fj)
	}
	write(t, filepath.Join(root, "NotAFunction", "readme.txt"), "no function.json")
	s := settings{"C": "Endpoint=sb://ns.example.net/;SharedAccessKeyName=k;SharedAccessKey=x;EntityPath=fromconn", "AzureWebJobs.EventsOff.Disabled": "true"}
	cfg := hostConfig{routePrefix: "api", handler: handlerConfig{forwarding: true}}

	fns, errs, err := loadFunctions(root, cfg, s)
	require.NoError(t, err)
	byName := map[string]*function{}
	for _, fn := range fns {
		byName[fn.name] = fn
	}
	require.Len(t, fns, 5, "loaded: %v; errors: %v", byName, errs)
	require.Equal(t, "Cron: '0 * * * * *'", byName["Timer"].timer.schedule.String())
	require.True(t, byName["Good"].forward, "http in + http out, forwarding on")
	require.Equal(t, []string{"GET"}, byName["Good"].methods)
	require.False(t, byName["Envelope"].forward, "a second output keeps the envelope")
	require.True(t, byName["EventsOff"].disabled)

	ev := byName["Events"].eventHub
	require.Equal(t, "fromconn", ev.eventHubName, "EntityPath wins over eventHubName")
	require.Equal(t, "ns.example.net", ev.namespace())
	require.Equal(t, "$Default", ev.consumerGroup)
	require.True(t, ev.many)
	require.True(t, ev.binary)
	retry := byName["Events"].retry
	require.True(t, retry.allowsRetry(1000), "-1 retries forever")
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second}, []time.Duration{retry.delayBefore(1), retry.delayBefore(2), retry.delayBefore(3), retry.delayBefore(4)})

	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	for _, want := range []string{"bad.name", "my_req", "exactly one trigger", "queueTrigger", "complex segments", "'%NOPE%' does not resolve", "linear"} {
		require.Condition(t, func() bool {
			for _, m := range msgs {
				if strings.Contains(m, want) {
					return true
				}
			}
			return false
		}, "no error mentions %q: %v", want, msgs)
	}
}
