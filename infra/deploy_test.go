package infra_test

// deploy.sh runs here against a fake `az` (and fake make, go and sleep) on
// PATH: Azure cannot exist here, so the fake plays it, and each case checks
// what the script asked Azure to do and what it told the user. The fake
// sleep records pauses instead of taking them, so the retry schedule is
// asserted without waiting.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const rgID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-test"

// fakeAz plays the Azure CLI. It appends each call's arguments to
// $FAKE_LOG, and its answers follow the FAKE_* variables:
//
//	FAKE_ROLE_SCOPE        the custom role exists, assignable at this scope
//	FAKE_ROLE_CREATE_FAILS creating the custom role is refused
//	FAKE_ZIP_ERRORS        the zip deployment fails this many times ...
//	FAKE_ZIP_ERROR         ... with this message
const fakeAz = `#!/usr/bin/env bash
echo "az $*" >>"$FAKE_LOG"
case "$*" in
"account show"*) exit 0 ;;
"functionapp list-flexconsumption-runtimes"*) echo "custom 1.0"; exit 0 ;;
"group create"*) echo "` + rgID + `"; exit 0 ;;
"role definition list"*)
  if [[ -n ${FAKE_ROLE_SCOPE:-} ]]; then
    printf 'other-role\t/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-other\n'
    printf 'abcd-role\t%s\n' "$FAKE_ROLE_SCOPE"
  fi
  exit 0 ;;
*"--template-file infra/iothub-role.bicep"*)
  if [[ -n ${FAKE_ROLE_CREATE_FAILS:-} ]]; then
    echo "ERROR: (AuthorizationFailed) The client does not have authorization to perform action 'Microsoft.Authorization/roleDefinitions/write'" >&2
    exit 1
  fi
  exit 0 ;;
*"--template-file infra/main.bicep"*)
  printf 'reboot-func-x\nhttps://reboot-func-x.azurewebsites.net\nreboot-hub-x\n'
  exit 0 ;;
"functionapp deployment source config-zip"*)
  n=$(cat "$FAKE_STATE/zip" 2>/dev/null || echo 0)
  echo $((n + 1)) >"$FAKE_STATE/zip"
  if ((n < ${FAKE_ZIP_ERRORS:-0})); then
    echo "$FAKE_ZIP_ERROR" >&2
    exit 1
  fi
  echo "WARNING: Deployment was successful." >&2
  exit 0 ;;
esac
echo "fake az: unexpected call: az $*" >&2
exit 99
`

const forbidden403 = "Failed to upload because Azure Storage responded with Forbidden : Response status code does not indicate success: 403 (This request is not authorized to perform this operation.)"

type deployRun struct {
	out    string
	err    error
	calls  []string // az calls, in order
	sleeps []string
	summ   string // what was written to GITHUB_STEP_SUMMARY
}

// runDeploy runs deploy.sh with the fakes and the FAKE_* settings in env.
func runDeploy(t *testing.T, env map[string]string, args ...string) deployRun {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	state := filepath.Join(dir, "state")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	require.NoError(t, os.MkdirAll(state, 0o755))
	scripts := map[string]string{
		"az":    fakeAz,
		"make":  "#!/usr/bin/env bash\necho \"make $*\" >>\"$FAKE_LOG\"\n",
		"go":    "#!/usr/bin/env bash\nexit 0\n",
		"sleep": "#!/usr/bin/env bash\necho \"$1\" >>\"$FAKE_STATE/sleeps\"\n",
	}
	for name, body := range scripts {
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755))
	}
	log := filepath.Join(state, "calls")
	summary := filepath.Join(state, "summary")

	cmd := exec.CommandContext(t.Context(), "bash", append([]string{"deploy.sh", "rg-test", "westeurope"}, args...)...)
	cmd.Env = []string{
		"PATH=" + bin + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + dir,
		"LC_ALL=C",
		"FAKE_LOG=" + log,
		"FAKE_STATE=" + state,
		"GITHUB_STEP_SUMMARY=" + summary,
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()

	run := deployRun{out: string(out), err: err}
	run.calls = readLines(t, log)
	run.sleeps = readLines(t, filepath.Join(state, "sleeps"))
	if data, err := os.ReadFile(summary); err == nil {
		run.summ = string(data)
	}
	return run
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func (r deployRun) count(prefix string) int {
	n := 0
	for _, c := range r.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

const (
	zipCall       = "az functionapp deployment source config-zip"
	mainDeploy    = "az deployment group create --resource-group rg-test --name reboot-"
	roleDeploy    = "az deployment group create --resource-group rg-test --name iothub-reboot-invoker-role --template-file infra/iothub-role.bicep"
	roleListCall  = "az role definition list"
	existingScope = rgID
)

func TestDeployWaitsForTheStorageRoleBeforeZipDeploying(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		env        map[string]string
		wantOK     bool
		wantZips   int
		wantSleeps []string
		wantOut    []string
	}{
		{
			name:     "first attempt succeeds",
			env:      map[string]string{"FAKE_ROLE_SCOPE": existingScope},
			wantOK:   true,
			wantZips: 1,
		},
		{
			name:       "403 until the role applies",
			env:        map[string]string{"FAKE_ROLE_SCOPE": existingScope, "FAKE_ZIP_ERRORS": "3", "FAKE_ZIP_ERROR": forbidden403},
			wantOK:     true,
			wantZips:   4,
			wantSleeps: []string{"15", "30", "60"},
			wantOut: []string{
				"attempt 1: storage refused the app's identity (403): its new role is not in effect yet; retrying in 15s (0s of 600s waited)",
				"attempt 3: storage refused the app's identity (403): its new role is not in effect yet; retrying in 60s (45s of 600s waited)",
				"Deployed.",
			},
		},
		{
			name:       "403 past the wait bound",
			env:        map[string]string{"FAKE_ROLE_SCOPE": existingScope, "FAKE_ZIP_ERRORS": "100", "FAKE_ZIP_ERROR": "ERROR: AuthorizationPermissionMismatch"},
			wantZips:   12,
			wantSleeps: []string{"15", "30", "60", "60", "60", "60", "60", "60", "60", "60", "60"},
			wantOut: []string{
				"ERROR: AuthorizationPermissionMismatch",
				"deploy.sh: storage still refuses reboot-func-x's identity after 585s and 12 attempts.",
				"DEPLOY_ROLE_WAIT=<seconds> waits longer",
			},
		},
		{
			name:       "a shorter bound",
			env:        map[string]string{"FAKE_ROLE_SCOPE": existingScope, "FAKE_ZIP_ERRORS": "100", "FAKE_ZIP_ERROR": forbidden403, "DEPLOY_ROLE_WAIT": "100"},
			wantZips:   3,
			wantSleeps: []string{"15", "30"},
			wantOut:    []string{"after 45s and 3 attempts"},
		},
		{
			name:     "a 403 inside an id is not a 403",
			env:      map[string]string{"FAKE_ROLE_SCOPE": existingScope, "FAKE_ZIP_ERRORS": "1", "FAKE_ZIP_ERROR": "Deployment endpoint responded with status code 202 for deployment id a4037c2e-1403-4f03-b403-40300000c403\nERROR: Deployment failed."},
			wantZips: 1,
			wantOut:  []string{"not a permission error, so not retried"},
		},
		{
			name:     "other failures are not retried",
			env:      map[string]string{"FAKE_ROLE_SCOPE": existingScope, "FAKE_ZIP_ERRORS": "1", "FAKE_ZIP_ERROR": "ERROR: Deployment failed: handler is not a valid executable"},
			wantZips: 1,
			wantOut: []string{
				"ERROR: Deployment failed: handler is not a valid executable",
				"deploy.sh: zip deployment of reboot-func-x failed (not a permission error, so not retried)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			run := runDeploy(t, tt.env)

			if tt.wantOK {
				require.NoError(t, run.err, run.out)
			} else {
				require.Error(t, run.err, run.out)
				require.NotContains(t, run.out, "Deployed.")
			}
			require.Equal(t, tt.wantZips, run.count(zipCall), run.out)
			require.Equal(t, tt.wantSleeps, run.sleeps)
			for _, want := range tt.wantOut {
				require.Contains(t, run.out, want)
			}
			for _, c := range run.calls {
				if strings.HasPrefix(c, zipCall) {
					require.Equal(t, zipCall+" --resource-group rg-test --name reboot-func-x --src dist/app.zip --build-remote false --output none", c)
				}
			}
		})
	}
}

func TestDeployCreatesTheCustomRoleOnlyWhenMissing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantOK   bool
		wantList bool // looks the role up
		wantRole bool // deploys iothub-role.bicep
		wantMain bool // deploys main.bicep
		wantOut  []string
	}{
		{
			name:     "missing: created, then the template",
			wantOK:   true,
			wantList: true, wantRole: true, wantMain: true,
			wantOut: []string{"creating it (needs Microsoft.Authorization/roleDefinitions/write: Owner or User Access Administrator)"},
		},
		{
			name:     "exists: not written again",
			env:      map[string]string{"FAKE_ROLE_SCOPE": existingScope},
			wantOK:   true,
			wantList: true, wantMain: true,
			wantOut: []string{"custom role exists (abcd-role)"},
		},
		{
			name:     "resource ids compare case-insensitively",
			env:      map[string]string{"FAKE_ROLE_SCOPE": strings.ToLower(existingScope)},
			wantOK:   true,
			wantList: true, wantMain: true,
		},
		{
			name:     "a role of another resource group does not count",
			env:      map[string]string{"FAKE_ROLE_SCOPE": existingScope + "-2"},
			wantOK:   true,
			wantList: true, wantRole: true, wantMain: true,
		},
		{
			name:     "missing and not allowed to create it",
			env:      map[string]string{"FAKE_ROLE_CREATE_FAILS": "1"},
			wantList: true, wantRole: true,
			wantOut: []string{
				"(AuthorizationFailed)",
				"deploy.sh: could not create the custom IoT Hub role in rg-test.",
				"az deployment group create -g rg-test -n iothub-reboot-invoker-role -f infra/iothub-role.bicep",
				"--parameters iotHubDataRole=IoTHubDataContributor",
			},
		},
		{
			name:   "built-in role chosen: no custom role needed",
			env:    map[string]string{"FAKE_ROLE_CREATE_FAILS": "1"},
			args:   []string{"--parameters", "iotHubDataRole=IoTHubDataContributor"},
			wantOK: true, wantMain: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			run := runDeploy(t, tt.env, tt.args...)

			if tt.wantOK {
				require.NoError(t, run.err, run.out)
				require.Contains(t, run.out, "Deployed.")
			} else {
				require.Error(t, run.err, run.out)
			}
			require.Equal(t, tt.wantList, run.count(roleListCall) == 1, "role lookups in %v", run.calls)
			require.Equal(t, tt.wantRole, run.count(roleDeploy) == 1, "role deployments in %v", run.calls)
			require.Equal(t, tt.wantMain, run.count(mainDeploy) == 1, "main deployments in %v", run.calls)
			for _, want := range tt.wantOut {
				require.Contains(t, run.out, want)
			}
		})
	}
}

func TestDeployOrderAndArguments(t *testing.T) {
	t.Parallel()
	run := runDeploy(t, nil, "--parameters", "namePrefix=contoso")
	require.NoError(t, run.err, run.out)

	var steps []string
	for _, c := range run.calls {
		f := strings.Fields(c)
		steps = append(steps, strings.Join(f[:min(3, len(f))], " "))
	}
	require.Equal(t, []string{
		"az account show",
		"make build package",
		"az functionapp list-flexconsumption-runtimes",
		"az group create",
		"az role definition",
		"az deployment group", // iothub-role.bicep
		"az deployment group", // main.bicep
		"az functionapp deployment",
	}, steps, "the role before the template that assigns it, the template before the zip")

	var main string
	for _, c := range run.calls {
		if strings.HasPrefix(c, mainDeploy) {
			main = c
		}
	}
	require.Contains(t, main, "--template-file infra/main.bicep --parameters infra/main.bicepparam --parameters namePrefix=contoso --query")

	require.Contains(t, run.out, "URL:           https://reboot-func-x.azurewebsites.net/api/devices/{deviceId}/reboot")
	require.Contains(t, run.summ, "- Function app: `reboot-func-x` at https://reboot-func-x.azurewebsites.net")
}

func TestDeployUsage(t *testing.T) {
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), "bash", "deploy.sh", "only-one-arg")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()

	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 2, exit.ExitCode())
	require.Contains(t, string(out), "infra/deploy.sh <resource-group> <location>")
	require.Contains(t, string(out), "DEPLOY_ROLE_WAIT")
	require.NotContains(t, string(out), "set -euo", "usage prints the header comment only")

	run := runDeploy(t, map[string]string{"DEPLOY_ROLE_WAIT": "ten minutes"})
	require.Error(t, run.err)
	require.Contains(t, run.out, "DEPLOY_ROLE_WAIT must be a number of seconds")
	require.Empty(t, run.calls, "nothing reaches Azure")
}
