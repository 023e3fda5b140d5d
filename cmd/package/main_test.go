package main

import (
	"archive/zip"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const testHost = `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`

// writeTree creates files (slash-separated names) under a new temporary root,
// 0644 unless modes says otherwise.
func writeTree(t *testing.T, files map[string]string, modes map[string]fs.FileMode) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		mode := fs.FileMode(0o644)
		if m, ok := modes[name]; ok {
			mode = m
		}
		require.NoError(t, os.WriteFile(p, []byte(content), mode))
		require.NoError(t, os.Chmod(p, mode))
	}
	return root
}

func zipEntries(t *testing.T, name string) map[string]*zip.File {
	t.Helper()
	zr, err := zip.OpenReader(name)
	require.NoError(t, err)
	t.Cleanup(func() { zr.Close() })
	entries := map[string]*zip.File{}
	for _, f := range zr.File {
		entries[f.Name] = f
	}
	return entries
}

func TestRunWritesPackage(t *testing.T) {
	src := writeTree(t, map[string]string{
		"host.json":                         testHost,
		"handler":                           "\x7fELF binary",
		"RebootDevice/function.json":        `{"bindings":[]}`,
		"TwinChangeProcessor/function.json": `{"bindings":[]}`,
		"local.settings.json":               `{"Values":{"SECRET":"x"}}`,
		"RebootDevice/local.settings.json":  `{}`,
		"assets/readme.txt":                 "kept",
	}, map[string]fs.FileMode{
		// Built on a file system without modes: the zip still marks it executable.
		"handler": 0o644,
	})
	out := filepath.Join(t.TempDir(), "nested", "app.zip")
	var stdout bytes.Buffer

	require.NoError(t, run([]string{"-src", src, "-out", out}, &stdout, io.Discard))

	require.Contains(t, stdout.String(), "functions [RebootDevice TwinChangeProcessor]")
	entries := zipEntries(t, out)
	require.ElementsMatch(t, []string{
		"host.json", "handler", "RebootDevice/function.json",
		"TwinChangeProcessor/function.json", "assets/readme.txt",
	}, keys(entries))
	require.Equal(t, fs.FileMode(0o755), entries["handler"].Mode().Perm())
	require.True(t, entries["handler"].Mode().IsRegular())
	require.Equal(t, fs.FileMode(0o644), entries["host.json"].Mode().Perm())

	rc, err := entries["handler"].Open()
	require.NoError(t, err)
	defer rc.Close()
	body, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.Equal(t, "\x7fELF binary", string(body))
}

func TestRunRejectsBrokenAppRoot(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{
			name:    "no host.json",
			files:   map[string]string{"handler": "x", "F/function.json": "{}"},
			wantErr: "host.json",
		},
		{
			name:    "not a custom handler",
			files:   map[string]string{"host.json": `{"version":"2.0"}`, "F/function.json": "{}"},
			wantErr: "no customHandler section",
		},
		{
			name:    "handler not built",
			files:   map[string]string{"host.json": testHost, "F/function.json": "{}"},
			wantErr: "has no handler",
		},
		{
			name:    "no functions",
			files:   map[string]string{"host.json": testHost, "handler": "x", "F/G/function.json": "{}"},
			wantErr: "no function folder",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := writeTree(t, tt.files, nil)
			out := filepath.Join(t.TempDir(), "app.zip")

			err := run([]string{"-src", src, "-out", out}, io.Discard, io.Discard)

			require.ErrorContains(t, err, tt.wantErr)
			require.NoFileExists(t, out)
		})
	}
}

func TestRunRejectsSymlink(t *testing.T) {
	src := writeTree(t, map[string]string{"host.json": testHost, "real": "x", "F/function.json": "{}"}, nil)
	require.NoError(t, os.Symlink("real", filepath.Join(src, "handler")))

	err := run([]string{"-src", src, "-out", filepath.Join(t.TempDir(), "app.zip")}, io.Discard, io.Discard)

	require.ErrorContains(t, err, "symlink")
}

func TestRunRejectsStrayArguments(t *testing.T) {
	require.ErrorContains(t, run([]string{"extra"}, io.Discard, io.Discard), "unexpected arguments")
}

func TestParseHost(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    string
		wantErr string
	}{
		{name: "plain", json: testHost, want: "handler"},
		{name: "nested", json: `{"customHandler":{"description":{"defaultExecutablePath":"bin/handler"}}}`, want: "bin/handler"},
		{name: "dot prefix is cleaned", json: `{"customHandler":{"description":{"defaultExecutablePath":"./handler"}}}`, want: "handler"},
		{name: "absolute", json: `{"customHandler":{"description":{"defaultExecutablePath":"/usr/bin/handler"}}}`, wantErr: "inside the app root"},
		{name: "escapes root", json: `{"customHandler":{"description":{"defaultExecutablePath":"../handler"}}}`, wantErr: "inside the app root"},
		{name: "backslash", json: `{"customHandler":{"description":{"defaultExecutablePath":"bin\\handler.exe"}}}`, wantErr: "slash-separated"},
		{name: "empty", json: `{"customHandler":{"description":{}}}`, wantErr: "empty"},
		{name: "malformed", json: `{`, wantErr: "parse host.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHost([]byte(tt.json))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func FuzzParseHost(f *testing.F) {
	f.Add([]byte(testHost))
	f.Add([]byte(`{"customHandler":{"description":{"defaultExecutablePath":"a/../../b"}}}`))
	f.Add([]byte(`{"customHandler":{"description":{"defaultExecutablePath":"a//b/"}}}`))
	f.Add([]byte(`{"customHandler":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		exe, err := parseHost(data)
		if err != nil {
			return
		}
		// Whatever host.json says, an accepted path stays inside the app root.
		require.True(t, fs.ValidPath(exe), "parseHost accepted %q", exe)
		require.Equal(t, path.Clean(exe), exe)
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
