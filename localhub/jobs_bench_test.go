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
//	go test -run '^$' -bench BenchmarkJobFleet -benchtime 20x ./localhub/
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

	n := 0 // job ids stay unique across the sub-benchmark's runs
	b.Run("job", func(b *testing.B) {
		for b.Loop() {
			n++
			id := "bench-job-" + strconv.Itoa(n)
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
					break
				}
				time.Sleep(2 * time.Millisecond) // the client's poll interval, part of what is measured
			}
		}
		b.ReportMetric(float64(fleet*b.N)/b.Elapsed().Seconds(), "devices/s")
	})

	b.Run("direct-calls", func(b *testing.B) {
		for b.Loop() {
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
		b.ReportMetric(float64(fleet*b.N)/b.Elapsed().Seconds(), "devices/s")
	})
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
