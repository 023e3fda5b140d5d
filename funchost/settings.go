package funchost

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// settings are the app settings the host and the handler see: the
// process environment, then local.settings.json Values, then
// Options.Settings, later ones winning. Keys match case-insensitively, as
// .NET configuration keys do.
type settings map[string]string

// loadSettings merges environ (KEY=VALUE entries), the Values of
// root/local.settings.json when that file exists, and overrides.
func loadSettings(root string, environ []string, overrides map[string]string) (settings, error) {
	s := settings{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			s.set(k, v)
		}
	}
	values, err := readLocalSettings(filepath.Join(root, "local.settings.json"))
	if err != nil {
		return nil, err
	}
	for k, v := range values {
		s.set(k, v)
	}
	for k, v := range overrides {
		s.set(k, v)
	}
	return s, nil
}

// set replaces any key that differs only in case, so the merged view has
// one entry per setting.
func (s settings) set(key, value string) {
	for k := range s {
		if k != key && strings.EqualFold(k, key) {
			delete(s, k)
		}
	}
	s[key] = value
}

// get looks key up, exactly first, then case-insensitively.
func (s settings) get(key string) (string, bool) {
	if v, ok := s[key]; ok {
		return v, true
	}
	for k, v := range s {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// section returns the children of a configuration section, as .NET
// configuration sees keys written <prefix>__<child> or <prefix>:<child>:
// child names lower-cased, nested children left out.
func (s settings) section(prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range s {
		if len(k) <= len(prefix) || !strings.EqualFold(k[:len(prefix)], prefix) {
			continue
		}
		rest := k[len(prefix):]
		var child string
		switch {
		case strings.HasPrefix(rest, "__"):
			child = rest[2:]
		case strings.HasPrefix(rest, ":"):
			child = rest[1:]
		default:
			continue
		}
		if child == "" || strings.Contains(child, "__") || strings.Contains(child, ":") {
			continue
		}
		out[strings.ToLower(child)] = v
	}
	return out
}

// environ renders the settings as KEY=VALUE entries, sorted for stable
// child environments.
func (s settings) environ() []string {
	out := make([]string, 0, len(s))
	for k, v := range s {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// disabled reports AzureWebJobs.<name>.Disabled, which the host honours
// when it is "true" (any case) or "1".
func (s settings) disabled(function string) bool {
	v, _ := s.get("AzureWebJobs." + function + ".Disabled")
	v = strings.TrimSpace(v)
	return strings.EqualFold(v, "true") || v == "1"
}

// localSettingsFile is local.settings.json as Core Tools reads it.
type localSettingsFile struct {
	IsEncrypted bool
	Values      map[string]json.RawMessage
}

func readLocalSettings(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read local.settings.json: %w", err)
	}
	var f localSettingsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("local.settings.json: %w", err)
	}
	if f.IsEncrypted {
		return nil, errors.New("local.settings.json: IsEncrypted is true; the local host cannot decrypt it (func settings decrypt)")
	}
	out := make(map[string]string, len(f.Values))
	for k, raw := range f.Values {
		out[k] = scalarString(raw)
	}
	return out, nil
}

// scalarString renders a JSON value as a setting: a string's content, null
// as "", anything else as its JSON text.
func scalarString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if t := strings.TrimSpace(string(raw)); t != "null" {
		return t
	}
	return ""
}

// resolveBindingExpression replaces every %NAME% in a function.json value
// with the app setting NAME; an unknown name is an error, as in the host
// ("'%NAME%' does not resolve to a value").
func resolveBindingExpression(value string, s settings) (string, error) {
	var b strings.Builder
	rest := value
	for {
		start := strings.IndexByte(rest, '%')
		if start < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		end := strings.IndexByte(rest[start+1:], '%')
		if end < 0 {
			return "", fmt.Errorf("%q has an unterminated %%setting%% expression", value)
		}
		name := rest[start+1 : start+1+end]
		v, ok := s.get(name)
		if !ok || name == "" {
			return "", fmt.Errorf("'%%%s%%' does not resolve to a value", name)
		}
		b.WriteString(rest[:start])
		b.WriteString(v)
		rest = rest[start+2+end:]
	}
}

// expandArguments expands %VAR% in executable arguments as the host does:
// from env (the child's environment) and what is left unresolved is
// removed.
func expandArguments(args []string, env settings) []string {
	out := make([]string, len(args))
	for i, a := range args {
		var b strings.Builder
		rest := a
		for {
			start := strings.IndexByte(rest, '%')
			end := -1
			if start >= 0 {
				end = strings.IndexByte(rest[start+1:], '%')
			}
			if start < 0 || end < 0 {
				b.WriteString(rest)
				break
			}
			name := rest[start+1 : start+1+end]
			b.WriteString(rest[:start])
			if v, ok := env.get(name); ok && name != "" {
				b.WriteString(v)
			}
			rest = rest[start+2+end:]
		}
		out[i] = b.String()
	}
	return out
}

// flexBool is a JSON bool that also accepts "true"/"false" strings, which
// is what an AzureFunctionsJobHost__… setting override produces.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case bool:
		*f = flexBool(x)
	case string:
		p, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return fmt.Errorf("%q is not a boolean", x)
		}
		*f = flexBool(p)
	case nil:
		*f = false
	default:
		return fmt.Errorf("%s is not a boolean", b)
	}
	return nil
}

// flexInt is a JSON integer that also accepts numeric strings.
type flexInt struct {
	Set   bool
	Value int
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case float64:
		if x != float64(int(x)) {
			return fmt.Errorf("%s is not a whole number", b)
		}
		*f = flexInt{Set: true, Value: int(x)}
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", x)
		}
		*f = flexInt{Set: true, Value: n}
	case nil:
		*f = flexInt{}
	default:
		return fmt.Errorf("%s is not a whole number", b)
	}
	return nil
}
