package bicep_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/infra/internal/bicep"
)

// FuzzParse checks the lexer is lossless and numbers lines right, and that no
// input makes Parse or the queries on its result panic or loop. Seeds: the
// checked-in corpus (testdata/fuzz/FuzzParse) plus this repository's own
// templates, so the fuzzer starts from real Bicep.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"../../*.bicep", "../../*.bicepparam", "../../modules/*.bicep"} {
		paths, err := filepath.Glob(pattern)
		require.NoError(f, err)
		for _, p := range paths {
			src, err := os.ReadFile(p)
			require.NoError(f, err)
			f.Add(string(src))
		}
	}
	f.Add(sample)

	f.Fuzz(func(t *testing.T, src string) {
		toks, lexErr := bicep.Lex(src)
		file, parseErr := bicep.Parse(src)
		if lexErr != nil {
			require.Error(t, parseErr, "Parse accepted what Lex rejected")
			return
		}

		var b strings.Builder
		line := 1
		for _, tok := range toks {
			require.NotEmpty(t, tok.Text)
			require.Equal(t, line, tok.Line, "token %q", tok.Text)
			line += strings.Count(tok.Text, "\n")
			b.WriteString(tok.Text)
		}
		require.Equal(t, src, b.String())

		if parseErr != nil {
			return
		}
		resolve := resolverFor(file)
		for _, d := range file.Decls {
			_ = d.String()
			_ = d.Value.ObjectEntries(resolve)
			_, _ = d.Value.StringValue(resolve)
			_, _ = d.Value.Body()
			if d.Keyword == "param" && d.Value != nil {
				if err := d.CheckValue(d.Value); err != nil && !errors.Is(err, bicep.ErrNotConstant) {
					require.Contains(t, err.Error(), "param "+d.Name)
				}
			}
		}
	})
}
