package handlers

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// No more than MaxConcurrentBatches invocations are read and processed at
// once; the others wait before reading their body, so the batches held in
// memory are bounded whatever the host sends.
func TestTwinProcessorBoundsConcurrentBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tp := newTwinProcessor(Deps{MaxConcurrentBatches: 2}.withDefaults())
		type invocation struct {
			body          *io.PipeWriter
			reading, done chan struct{}
			rec           *httptest.ResponseRecorder
		}
		invs := make([]*invocation, 3)
		for i := range invs {
			pr, pw := io.Pipe()
			inv := &invocation{body: pw, reading: make(chan struct{}), done: make(chan struct{}), rec: httptest.NewRecorder()}
			invs[i] = inv
			go func() {
				defer close(inv.done)
				tp.ServeHTTP(inv.rec, httptest.NewRequest(http.MethodPost, "/TwinChangeProcessor", pr))
			}()
			go func() {
				// Returns once the processor reads the body.
				if _, err := pw.Write([]byte(`{"Data":{"events":"[]"}`)); err == nil {
					close(inv.reading)
				}
			}()
		}
		reading := func() (n int) {
			for _, inv := range invs {
				select {
				case <-inv.reading:
					n++
				default:
				}
			}
			return n
		}
		synctest.Wait()
		require.Equal(t, 2, reading(), "two batches read, the third waits")

		// Finish one reading batch: the waiting one gets its slot.
		for _, inv := range invs {
			select {
			case <-inv.reading:
			default:
				continue
			}
			inv.body.Write([]byte(`}`))
			inv.body.Close()
			<-inv.done
			require.Equal(t, http.StatusOK, inv.rec.Code)
			break
		}
		synctest.Wait()
		require.Equal(t, 3, reading())
		for _, inv := range invs {
			inv.body.Close()
			<-inv.done
		}
	})
}

// The reboot memory never holds more than its size, and forgets the
// devices least recently seen first.
func TestRebootMemoryIsBounded(t *testing.T) {
	m := newRebootMemory(4)
	remember := func(id string) {
		m.update(id, func(rebootState, bool) rebootState { return rebootState{LastReboot: id} })
	}
	known := func(id string) (ok bool) {
		m.update(id, func(prev rebootState, k bool) rebootState { ok = k; return prev })
		return ok
	}
	for i := range 1000 {
		remember(fmt.Sprintf("dev-%d", i))
		require.LessOrEqual(t, m.len(), 4)
	}
	require.True(t, known("dev-999"))
	require.True(t, known("dev-998"))
	require.False(t, known("dev-0"))
}
