package main

import (
	"archive/zip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Modes written into the zip. The handler gets 0755 whatever its mode on
// disk: a zip built on Windows, or copied through a tool that drops modes,
// must still start in Azure.
const (
	executableMode fs.FileMode = 0o755
	fileMode       fs.FileMode = 0o644
)

// writeZip writes a's files to path, replacing it only once the zip is
// complete so a failed run never leaves a truncated package behind.
func writeZip(path string, a app) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".app-*.zip")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	zw := zip.NewWriter(tmp)
	for _, rel := range a.files {
		if err := addFile(zw, a.root, rel, rel == a.executable); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func addFile(zw *zip.Writer, root, rel string, executable bool) error {
	f, err := os.Open(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}

	hdr := &zip.FileHeader{Name: rel, Method: zip.Deflate, Modified: info.ModTime()}
	if executable {
		hdr.SetMode(executableMode)
	} else {
		hdr.SetMode(fileMode)
	}
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return fmt.Errorf("add %s: %w", rel, err)
	}
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("add %s: %w", rel, err)
	}
	return nil
}
