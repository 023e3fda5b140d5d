package localhub_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/jobs"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// BenchmarkJobFleet measures a method job over a fleet of paho devices,
// from PUT /jobs/v2/{id} to the job read back as completed, against a
// floor measured in the same run: the same calls made directly (POST
// /twins/{id}/methods) by as many callers as a job has calls in flight.
// The difference is what a job adds: its records (two durable writes per
// device) and the client's polling of the job (every 2 ms here).
//
//	go test -run '^$' -bench BenchmarkJobFleet -benchtime 20x -count 5 ./localhub/
func BenchmarkJobFleet(b *testing.B) {
	const fleet = 100
	hub := localhubtest.New(b, nil)
	ids := make([]string, fleet)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%03d", i)
		localhubtest.NewDevice(b, hub, ids[i], localhubtest.Reply(200, `{"ok":true}`))
	}
	cs, err := hub.ServiceConnectionString("iothubowner")
	if err != nil {
		b.Fatal(err)
	}
	_, key, _ := strings.Cut(cs, "SharedAccessKey=")
	token, err := sas.New(hub.Hostname(), "iothubowner", key, time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	svc := &service{hub: hub, token: token, client: hub.HTTPClient()}

	// Each iteration runs the job and then the floor, so that the load of
	// a shared machine weighs on both alike.
	var jobTime, floorTime time.Duration
	n := 0
	for b.Loop() {
		n++
		start := time.Now()
		runBenchJob(b, svc, "bench-job-"+strconv.Itoa(n))
		jobTime += time.Since(start)

		start = time.Now()
		callDirectly(b, svc, ids)
		floorTime += time.Since(start)
	}
	b.ReportMetric(float64(fleet*n)/jobTime.Seconds(), "job-devices/s")
	b.ReportMetric(float64(fleet*n)/floorTime.Seconds(), "direct-devices/s")
	b.ReportMetric(100*floorTime.Seconds()/jobTime.Seconds(), "%-of-floor")
}

// runBenchJob schedules a method job over the bench fleet and polls it
// until it has completed.
func runBenchJob(b *testing.B, svc *service, id string) {
	body := `{"type":"scheduleDeviceMethod","queryCondition":"STARTSWITH(deviceId, 'bench-')",` +
		`"cloudToDeviceMethod":{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30}}`
	if status, resp, _ := svc.do(http.MethodPut, "/jobs/v2/"+id, body); status != http.StatusOK {
		b.Fatalf("create job: %d %s", status, resp)
	}
	for {
		status, resp, _ := svc.do(http.MethodGet, "/jobs/v2/"+id, "")
		if status != http.StatusOK {
			b.Fatalf("get job: %d %s", status, resp)
		}
		if job := decodeBenchJob(b, resp); job != "" {
			if job != "completed" {
				b.Fatalf("job ended %s", job)
			}
			return
		}
		time.Sleep(2 * time.Millisecond) // the client's poll interval, part of what is measured
	}
}

// callDirectly makes the job's calls as direct calls, with as many
// callers as a job has calls in flight.
func callDirectly(b *testing.B, svc *service, ids []string) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range jobs.DefaultConcurrency {
		wg.Go(func() {
			for id := range work {
				if status, resp, _ := svc.do(http.MethodPost, "/twins/"+id+"/methods", `{"methodName":"reboot","payload":null}`); status != http.StatusOK {
					b.Errorf("invoke %s: %d %s", id, status, resp)
				}
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
}

// decodeBenchJob returns the job's status once it has ended, "" before.
func decodeBenchJob(b *testing.B, body string) string {
	var job struct {
		Status jobs.Status `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &job); err != nil {
		b.Fatal(err)
	}
	if job.Status.Finished() {
		return string(job.Status)
	}
	return ""
}
