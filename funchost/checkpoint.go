package funchost

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// checkpoint is where a consumer group resumes in a partition: after the
// event with this sequence number (offset kept for people reading the
// file, as the extension's blob keeps both).
type checkpoint struct {
	SequenceNumber int64     `json:"sequenceNumber"`
	Offset         string    `json:"offset"`
	Updated        time.Time `json:"updated"`
}

// checkpointKey names one partition of one consumer group, as the
// extension's blob checkpoint store does:
// {namespace}/{eventHub}/{consumerGroup}/checkpoint/{partitionId}, the
// first three lower-cased.
type checkpointKey struct {
	namespace, eventHub, consumerGroup, partition string
}

// checkpointStore keeps checkpoints: in files under a directory that
// stands in for the AzureWebJobsStorage container azure-webjobs-eventhub,
// or in memory when the host has no such directory.
type checkpointStore struct {
	dir string // "": in memory

	mu     sync.Mutex
	memory map[checkpointKey]checkpoint
}

func newCheckpointStore(dir string) *checkpointStore {
	return &checkpointStore{dir: dir, memory: map[checkpointKey]checkpoint{}}
}

// where describes the store for logs.
func (s *checkpointStore) where() string {
	if s.dir == "" {
		return "memory"
	}
	return s.dir
}

// path is the key's file: the blob name, each segment escaped so that
// any name is one valid file name on every OS.
func (s *checkpointStore) path(k checkpointKey) string {
	return filepath.Join(s.dir, escapeSegment(strings.ToLower(k.namespace)), escapeSegment(strings.ToLower(k.eventHub)),
		escapeSegment(strings.ToLower(k.consumerGroup)), "checkpoint", escapeSegment(k.partition))
}

// escapeSegment percent-encodes every byte but letters, digits, '-',
// '_', '.' and '$' (which "$Default" needs), and a leading '.'.
func escapeSegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '$' || c == '.' && i > 0
		if ok {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// errInvalidCheckpoint marks a checkpoint file that cannot be read as one,
// which the extension's blob store ignores ("This checkpoint is not valid
// and will be ignored"), so the partition starts at the initial offset.
var errInvalidCheckpoint = errors.New("the checkpoint is not valid and is ignored")

// get returns the key's checkpoint; ok is false when there is none. A file
// that holds no checkpoint gives an error wrapping errInvalidCheckpoint.
func (s *checkpointStore) get(k checkpointKey) (cp checkpoint, ok bool, err error) {
	if s.dir == "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		cp, ok = s.memory[k]
		return cp, ok, nil
	}
	b, err := os.ReadFile(s.path(k))
	if errors.Is(err, os.ErrNotExist) {
		return checkpoint{}, false, nil
	}
	if err != nil {
		return checkpoint{}, false, fmt.Errorf("read checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &cp); err != nil || cp.SequenceNumber < 0 {
		return checkpoint{}, false, fmt.Errorf("%s: %w", s.path(k), errInvalidCheckpoint)
	}
	return cp, true, nil
}

// set stores the key's checkpoint. A file is replaced whole (written
// aside, synced, renamed), so a crash leaves the old checkpoint or the
// new one, never a torn one.
func (s *checkpointStore) set(k checkpointKey, cp checkpoint) error {
	if s.dir == "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.memory[k] = cp
		return nil
	}
	path := s.path(k)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("checkpoint directory: %w", err)
	}
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".checkpoint-*")
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}
