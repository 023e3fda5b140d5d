package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// app is a validated app root, ready to zip.
type app struct {
	root string
	// executable is host.json's defaultExecutablePath, slash-separated and
	// relative to root.
	executable string
	// files are every file to package, slash-separated, relative to root, sorted.
	files []string
	// functions are the folders holding a function.json, sorted.
	functions []string
}

// localSettings holds local secrets and is never deployed (the host ignores
// it in Azure anyway).
const localSettings = "local.settings.json"

// readApp checks that root is a runnable custom-handler app: a host.json naming
// an executable that exists, and at least one function folder.
func readApp(root string) (app, error) {
	hostJSON, err := os.ReadFile(filepath.Join(root, "host.json"))
	if err != nil {
		return app{}, fmt.Errorf("app root %s: %w", root, err)
	}
	executable, err := parseHost(hostJSON)
	if err != nil {
		return app{}, fmt.Errorf("%s: %w", filepath.Join(root, "host.json"), err)
	}

	a := app{root: root, executable: executable}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink; the package needs real files", rel)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", rel)
		case path.Base(rel) == localSettings:
			return nil
		}
		a.files = append(a.files, rel)
		if dir, file := path.Split(rel); file == "function.json" && strings.Count(dir, "/") == 1 {
			a.functions = append(a.functions, strings.TrimSuffix(dir, "/"))
		}
		return nil
	})
	if err != nil {
		return app{}, fmt.Errorf("app root %s: %w", root, err)
	}

	if !slices.Contains(a.files, executable) {
		return app{}, fmt.Errorf("app root %s has no %s (host.json customHandler.description.defaultExecutablePath): build the handler first", root, executable)
	}
	if len(a.functions) == 0 {
		return app{}, fmt.Errorf("app root %s has no function folder (<name>/function.json)", root)
	}
	return a, nil
}

// hostFile is the part of host.json the package depends on.
type hostFile struct {
	CustomHandler *struct {
		Description struct {
			DefaultExecutablePath string `json:"defaultExecutablePath"`
		} `json:"description"`
	} `json:"customHandler"`
}

// parseHost returns the custom handler's executable path from host.json. It
// must name a file inside the app root, since the package is all Azure gets.
func parseHost(data []byte) (string, error) {
	var h hostFile
	if err := json.Unmarshal(data, &h); err != nil {
		return "", fmt.Errorf("parse host.json: %w", err)
	}
	if h.CustomHandler == nil {
		return "", errors.New("no customHandler section: not a custom-handler app")
	}
	exe := h.CustomHandler.Description.DefaultExecutablePath
	switch {
	case exe == "":
		return "", errors.New("customHandler.description.defaultExecutablePath is empty")
	case strings.ContainsRune(exe, '\\'), strings.ContainsRune(exe, 0):
		return "", fmt.Errorf("defaultExecutablePath %q: use a slash-separated path", exe)
	case path.IsAbs(exe), !fs.ValidPath(path.Clean(exe)):
		return "", fmt.Errorf("defaultExecutablePath %q must name a file inside the app root", exe)
	}
	return path.Clean(exe), nil
}
