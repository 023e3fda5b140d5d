//go:build windows

package eventlog

import (
	"path/filepath"
	"syscall"
)

// lockDir holds dir/LOCK open without sharing for as long as the process
// lives or until unlock: two processes appending to one log would corrupt
// it, and Open's recovery would cut a live writer's records.
func lockDir(dir string) (unlock func(), err error) {
	name, err := syscall.UTF16PtrFromString(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, err
	}
	h, err := syscall.CreateFile(name, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil,
		syscall.OPEN_ALWAYS, syscall.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		return nil, err
	}
	return func() { syscall.CloseHandle(h) }, nil
}

// syncDir is a no-op: Windows cannot open a directory to flush it, and
// NTFS makes file creation durable through its own journal.
func syncDir(string) error { return nil }
