package registry

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Jobs are stored for the job engine (package jobs), which owns their
// encoding: the store keeps opaque records, a job's under its id in
// bucketJobs and each of its devices' under the job's own bucket in
// bucketJobDevices. Like every other write, WriteJob commits with fsync
// before it returns, so an engine that records what it is about to do
// before doing it finds the record after a crash.

// JobWrite is one atomic change to a job: its record, its devices'
// records, or both.
type JobWrite struct {
	ID string
	// Record replaces the job's record; nil leaves it as it is.
	Record []byte
	// Create makes the write fail with ErrJobExists if the job exists.
	// Without it, a write to a job that does not exist fails with
	// ErrJobNotFound unless it carries the record.
	Create bool
	// Devices are device records to put under the job.
	Devices []JobDevice
}

// JobDevice is one device's record within a job.
type JobDevice struct {
	DeviceID string
	Record   []byte
}

// WriteJob commits w durably before returning.
func (s *Store) WriteJob(w JobWrite) error {
	if w.ID == "" {
		return argumentInvalid("job id is empty")
	}
	err := s.writes.update(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		exists := jobs.Get([]byte(w.ID)) != nil
		switch {
		case w.Create && exists:
			return ErrJobExists
		case !exists && w.Record == nil:
			return ErrJobNotFound
		}
		if w.Record != nil {
			if err := jobs.Put([]byte(w.ID), w.Record); err != nil {
				return err
			}
		}
		if len(w.Devices) == 0 {
			return nil
		}
		devices, err := tx.Bucket(bucketJobDevices).CreateBucketIfNotExists([]byte(w.ID))
		if err != nil {
			return err
		}
		for _, d := range w.Devices {
			if err := devices.Put([]byte(d.DeviceID), d.Record); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write job %q: %w", w.ID, err)
	}
	return nil
}

// Job returns a job's record. ErrJobNotFound.
func (s *Store) Job(id string) ([]byte, error) {
	var rec []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get([]byte(id))
		if v == nil {
			return ErrJobNotFound
		}
		rec = append([]byte(nil), v...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("job %q: %w", id, err)
	}
	return rec, nil
}

// Jobs calls fn with every job's record, in job id order, in one read
// transaction. record is valid only during the call, and fn must not call
// the Store.
func (s *Store) Jobs(fn func(id string, record []byte) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			return fn(string(k), v)
		})
	})
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	return nil
}

// JobDevices calls fn with the records of the devices of job id, in device
// id order, in one read transaction; a job without devices calls it never.
// record is valid only during the call, and fn must not call the Store.
func (s *Store) JobDevices(id string, fn func(deviceID string, record []byte) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobDevices).Bucket([]byte(id))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
	})
	if err != nil {
		return fmt.Errorf("devices of job %q: %w", id, err)
	}
	return nil
}

// AllJobDevices calls fn with every device record of every job, in job id
// then device id order, in one read transaction (a consistent view for
// queries on devices.jobs). record is valid only during the call, and fn
// must not call the Store.
func (s *Store) AllJobDevices(fn func(jobID, deviceID string, record []byte) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		all := tx.Bucket(bucketJobDevices)
		return all.ForEachBucket(func(job []byte) error {
			return all.Bucket(job).ForEach(func(k, v []byte) error {
				return fn(string(job), string(k), v)
			})
		})
	})
	if err != nil {
		return fmt.Errorf("list device jobs: %w", err)
	}
	return nil
}

// DeleteJobs removes jobs and their device records (job history expires
// after a retention period). Unknown ids are ignored.
func (s *Store) DeleteJobs(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.writes.update(func(tx *bolt.Tx) error {
		for _, id := range ids {
			if err := tx.Bucket(bucketJobs).Delete([]byte(id)); err != nil {
				return err
			}
			devices := tx.Bucket(bucketJobDevices)
			if devices.Bucket([]byte(id)) != nil {
				if err := devices.DeleteBucket([]byte(id)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete jobs: %w", err)
	}
	return nil
}

// ValidateTwinPatch checks p as PatchTwin would (keys, values, depth, the
// size of each section's patch) without writing anything, so a job that
// will apply p to many twins can refuse it up front.
func ValidateTwinPatch(p TwinPatch) error {
	if p.Tags != nil {
		if _, err := normalizePatch(sectionTags, p.Tags, true); err != nil {
			return err
		}
	}
	if p.Desired != nil {
		if _, err := normalizePatch(sectionDesired, p.Desired, true); err != nil {
			return err
		}
	}
	return nil
}
