package infra_test

// Parameter checks: the values main.bicepparam, the defaults and main.bicep's
// module calls pass must satisfy the @allowed/@minValue/@maxValue/@minLength/
// @maxLength decorators, which Azure Resource Manager enforces only when a
// deployment starts.

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/infra/internal/bicep"
)

var constraintDecorators = []string{"allowed", "minValue", "maxValue", "minLength", "maxLength"}

func TestParamFileValuesPassTheirDecorators(t *testing.T) {
	infra := loadInfra(t)
	for _, p := range infra.params.All("param") {
		t.Run(p.Name, func(t *testing.T) {
			d, ok := infra.main.Find("param", p.Name)
			require.True(t, ok, "main.bicepparam sets %s, which main.bicep does not declare", p.Name)
			require.NoError(t, d.CheckValue(p.Value), "main.bicepparam")
		})
	}
}

func TestParamDefaultsPassTheirDecorators(t *testing.T) {
	infra := loadInfra(t)
	files := map[string]*bicep.File{"main.bicep": infra.main, "iothub-role.bicep": parseFile(t, "iothub-role.bicep")}
	for path, f := range infra.modules {
		files[path] = f
	}
	for path, f := range files {
		for _, d := range f.All("param") {
			if d.Value == nil {
				continue
			}
			if err := d.CheckValue(d.Value); err != nil && !errors.Is(err, bicep.ErrNotConstant) {
				t.Errorf("%s: default of %v", path, err)
			}
		}
	}
}

// Every module argument is a param the module declares, every required param
// is passed, constant arguments pass the module's decorators, and a main.bicep
// param passed straight through carries the module's constraints itself, so a
// bad value fails on the name the user typed.
func TestModuleArgumentsPassTheirDecorators(t *testing.T) {
	infra := loadInfra(t)
	for _, m := range infra.main.All("module") {
		t.Run(m.Name, func(t *testing.T) {
			mod := infra.modules[m.Type]
			body, ok := m.Value.Body()
			require.True(t, ok)
			params, _ := body.Get("params")
			args, ok := params.Object()
			require.True(t, ok, "module %s: params must be an object literal", m.Name)

			passed := map[string]bool{}
			for _, arg := range args.Props {
				passed[arg.Key] = true
				d, ok := mod.Find("param", arg.Key)
				require.True(t, ok, "main.bicep passes %s to %s, which declares no such param", arg.Key, m.Type)

				if err := d.CheckValue(arg.Value); err != nil && !errors.Is(err, bicep.ErrNotConstant) {
					t.Errorf("main.bicep passes %s = %s to %s: %v", arg.Key, arg.Value.Text(), m.Type, err)
				}
				name, ok := arg.Value.IdentName()
				if !ok {
					continue
				}
				top, ok := infra.main.Find("param", name)
				if !ok {
					continue // a var
				}
				for _, want := range constraintDecorators {
					dec, ok := d.Decorator(want)
					if !ok {
						continue
					}
					got, ok := top.Decorator(want)
					require.True(t, ok, "%s has @%s%s, but main.bicep's param %s, passed to it, has none", m.Type, want, argsText(dec), name)
					require.Equal(t, argsText(dec), argsText(got), "@%s of main.bicep's %s and of %s's %s", want, name, m.Type, arg.Key)
				}
			}
			for _, d := range mod.All("param") {
				require.True(t, d.Value != nil || passed[d.Name], "main.bicep does not pass %s's required param %s", m.Type, d.Name)
			}
		})
	}
}

func argsText(d bicep.Decorator) string {
	var s string
	for i, a := range d.Args {
		if i > 0 {
			s += ", "
		}
		s += a.Text()
	}
	return "(" + s + ")"
}

// Flex Consumption scales an app out to between 40 and 1000 instances of 512,
// 2048 or 4096 MB (docs/deploy.md, "Sources"); a smaller maximum is refused
// by the platform, so the template refuses it first.
func TestFlexScaleLimits(t *testing.T) {
	infra := loadInfra(t)
	tests := []struct {
		param   string
		value   int
		wantErr string
	}{
		{param: "maximumInstanceCount", value: 1, wantErr: "below @minValue(40)"},
		{param: "maximumInstanceCount", value: 39, wantErr: "below @minValue(40)"},
		{param: "maximumInstanceCount", value: 40},
		{param: "maximumInstanceCount", value: 1000},
		{param: "maximumInstanceCount", value: 1001, wantErr: "above @maxValue(1000)"},
		{param: "instanceMemoryMB", value: 512},
		{param: "instanceMemoryMB", value: 2048},
		{param: "instanceMemoryMB", value: 4096},
		{param: "instanceMemoryMB", value: 1024, wantErr: "is not one of"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s=%d", tt.param, tt.value), func(t *testing.T) {
			for path, f := range map[string]*bicep.File{
				"main.bicep":                infra.main,
				"modules/functionapp.bicep": infra.modules["modules/functionapp.bicep"],
			} {
				d, ok := f.Find("param", tt.param)
				require.True(t, ok, "%s declares no %s", path, tt.param)
				err := d.CheckValue(bicep.Expr{&bicep.Number{Text: fmt.Sprint(tt.value)}})
				if tt.wantErr == "" {
					require.NoError(t, err, path)
				} else {
					require.ErrorContains(t, err, tt.wantErr, path)
				}
			}
		})
	}
}
