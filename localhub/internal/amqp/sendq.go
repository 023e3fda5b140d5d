package amqp

import (
	"context"
	"sync"
)

// sendQueue is a server-sender link's bounded queue of encoded messages
// waiting for credit. Send blocks while it is full, which is how a slow
// consumer pushes back on the application instead of growing memory.
type sendQueue struct {
	mu     sync.Mutex
	items  [][]byte
	head   int
	bytes  int
	limit  int
	err    error         // set when the link is gone: pushes fail with it
	space  chan struct{} // closed and replaced when items are popped and someone waits
	waits  int           // pushes waiting on space
	notify func()        // called when the queue goes from empty to not empty
}

func newSendQueue(limit int, notify func()) *sendQueue {
	return &sendQueue{limit: limit, space: make(chan struct{}), notify: notify}
}

// push adds p, waiting for room. One message always fits an empty queue.
func (q *sendQueue) push(ctx context.Context, p []byte) error {
	for {
		q.mu.Lock()
		if q.err != nil {
			err := q.err
			q.mu.Unlock()
			return err
		}
		n := len(q.items) - q.head
		if n == 0 || q.bytes+len(p) <= q.limit {
			q.items = append(q.items, p)
			q.bytes += len(p)
			q.mu.Unlock()
			if n == 0 {
				q.notify()
			}
			return nil
		}
		space := q.space
		q.waits++
		q.mu.Unlock()
		var err error
		select {
		case <-space:
		case <-ctx.Done():
			err = ctx.Err()
		}
		q.mu.Lock()
		q.waits--
		q.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// pop removes the oldest message; ok is false when the queue is empty.
func (q *sendQueue) pop() (p []byte, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return nil, false
	}
	p = q.items[q.head]
	q.items[q.head] = nil
	q.head++
	q.bytes -= len(p)
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 64 && q.head*2 > len(q.items) {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	if q.waits > 0 {
		close(q.space)
		q.space = make(chan struct{})
	}
	return p, true
}

// len reports how many messages wait.
func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// close fails pending and future pushes with err and drops what waits,
// returning the bytes dropped.
func (q *sendQueue) close(err error) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return 0
	}
	q.err = err
	dropped := q.bytes
	q.items, q.head, q.bytes = nil, 0, 0
	close(q.space)
	q.space = make(chan struct{})
	return dropped
}
