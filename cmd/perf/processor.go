package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// processorCommand is the function app's processor benchmark, as
// docs/performance.md gives it: one core, the jsonscan decoder, against
// plain encoding/json decoding of the same 10,000-event batch in the same
// iteration.
var processorCommand = []string{"go", "test", "./handlers", "-run", "^$",
	"-bench", "BenchmarkTwinChangeProcessor/decoder=jsonscan", "-cpu", "1", "-benchtime", "5x", "-count", "3"}

// processorRun is the median of the benchmark's runs.
type processorRun struct {
	eventsPerSecond float64 // through the whole processor, per CPU second
	xFloor          float64 // encoding/json decoding time / processor time
}

func runProcessor(ctx context.Context, repo string) (processorRun, error) {
	cmd := exec.CommandContext(ctx, processorCommand[0], processorCommand[1:]...)
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		return processorRun{}, fmt.Errorf("%s: %w\n%s", strings.Join(processorCommand, " "), err, out)
	}
	var rates, ratios []float64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], "BenchmarkTwinChangeProcessor/") {
			continue
		}
		// Benchmark lines are "name N value unit value unit ...".
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "events/s":
				rates = append(rates, v)
			case "x-floor":
				ratios = append(ratios, v)
			}
		}
	}
	if len(rates) == 0 || len(rates) != len(ratios) {
		return processorRun{}, fmt.Errorf("no events/s and x-floor in the benchmark's output:\n%s", out)
	}
	return processorRun{eventsPerSecond: median(rates), xFloor: median(ratios)}, nil
}
