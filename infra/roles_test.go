package infra_test

// Role checks: what the function app's identity is granted, what a
// deployment needs to be allowed to do, and the custom role's template.

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/infra/internal/bicep"
)

// builtInRoles are the Azure built-in role definitions the templates use or
// the checks reason about, by id, as Azure's built-in roles reference lists
// them (docs/deploy.md, "Sources").
var builtInRoles = map[string]string{
	"4fc6c259-987e-4a07-842e-c321cc9d413f": "IoT Hub Data Contributor",
	"b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
	"ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
	"0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
	"974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
	"17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
	"4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
	"3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}

const (
	storageBlobDataOwner        = "Storage Blob Data Owner"
	storageTableDataContributor = "Storage Table Data Contributor"
	storageQueueDataContributor = "Storage Queue Data Contributor"
	storageAccountContributor   = "Storage Account Contributor"
)

// hostStorageRoles returns the roles the app's identity needs on the
// AzureWebJobsStorage account for these function.json bindings, after the
// table "Connecting to host storage with an identity" of the Functions docs
// (docs/deploy.md, "Sources"). The host alone needs blobs (keys, locks, Event
// Hubs checkpoints; on Flex also the deployment container) and tables (its
// diagnostic events); queues only serve the blob trigger, Durable Functions
// and queue bindings on the host's own connection.
func hostStorageRoles(bindings []map[string]any) []string {
	roles := map[string]bool{storageBlobDataOwner: true, storageTableDataContributor: true}
	for _, b := range bindings {
		typ, _ := b["type"].(string)
		conn, _ := b["connection"].(string)
		onHostStorage := conn == "" || conn == "AzureWebJobsStorage"
		switch {
		case typ == "blobTrigger":
			roles[storageQueueDataContributor] = true
			roles[storageAccountContributor] = true
		case typ == "orchestrationTrigger" || typ == "activityTrigger" || typ == "entityTrigger" || typ == "durableClient":
			roles[storageQueueDataContributor] = true
		case (typ == "queueTrigger" || typ == "queue") && onHostStorage:
			roles[storageQueueDataContributor] = true
		}
	}
	return sortedKeys(roles)
}

// roleAssignment is one Microsoft.Authorization/roleAssignments resource.
type roleAssignment struct {
	symbol string
	scope  string // the symbolic name of the resource it is scoped to
	role   string // the built-in role's name, or "custom"
	def    bicep.Expr
}

var roleIDRef = regexp.MustCompile(`roleIds \. (\w+)`)

// roleAssignments reads the role assignments of roles.bicep, resolving which
// role each grants through its roleIds var.
func roleAssignments(t *testing.T, m bicepModule) []roleAssignment {
	t.Helper()
	ids := roleIDs(t, m)
	var out []roleAssignment
	for _, d := range m.file.All("resource") {
		if !strings.HasPrefix(d.Type, "Microsoft.Authorization/roleAssignments@") {
			continue
		}
		body, ok := d.Value.Body()
		require.True(t, ok, "%s: role assignment %s has no body", m.path, d.Name)
		scope, _ := body.Get("scope")
		scopeName, ok := scope.IdentName()
		require.True(t, ok, "%s: role assignment %s must be scoped to a resource symbol, got %s", m.path, d.Name, scope.Text())
		def, ok := body.Path("properties", "roleDefinitionId")
		require.True(t, ok, "%s: role assignment %s has no roleDefinitionId", m.path, d.Name)

		a := roleAssignment{symbol: d.Name, scope: scopeName, def: def}
		if name, ok := def.IdentName(); ok { // a var holding the id
			v, ok := m.file.Find("var", name)
			require.True(t, ok, "%s: %s is not a var", m.path, name)
			def = v.Value
		}
		refs := roleIDRef.FindAllStringSubmatch(def.Text(), -1)
		switch {
		case strings.Contains(def.Text(), "rebootInvokerRoleName"):
			a.role = "custom"
		case len(refs) == 1:
			id, ok := ids[refs[0][1]]
			require.True(t, ok, "%s: roleIds has no %s", m.path, refs[0][1])
			a.role = builtInRoles[id]
		default:
			t.Fatalf("%s: role assignment %s: cannot tell which role %s grants", m.path, d.Name, def.Text())
		}
		out = append(out, a)
	}
	return out
}

// roleIDs returns roles.bicep's roleIds var: key to role definition id.
func roleIDs(t *testing.T, m bicepModule) map[string]string {
	t.Helper()
	v, ok := m.file.Find("var", "roleIds")
	require.True(t, ok, "%s declares no roleIds var", m.path)
	o, ok := v.Value.Object()
	require.True(t, ok, "roleIds must be an object literal")
	ids := map[string]string{}
	for _, p := range o.Props {
		id, ok := p.Value.Literal()
		require.True(t, ok, "roleIds.%s must be a literal id", p.Key)
		ids[p.Key] = id
	}
	return ids
}

// lowerCamel turns a role name into the key roleIds uses for it:
// "IoT Hub Data Contributor" gives iotHubDataContributor.
func lowerCamel(name string) string {
	var b strings.Builder
	for i, w := range strings.Fields(name) {
		if i == 0 {
			b.WriteString(strings.ToLower(w))
			continue
		}
		r := []rune(w)
		r[0] = unicode.ToUpper(r[0])
		b.WriteString(string(r))
	}
	return b.String()
}

func TestRoleIdsAreTheRolesTheyName(t *testing.T) {
	roles := loadInfra(t).module(t, "modules/roles.bicep")
	for key, id := range roleIDs(t, roles) {
		name, ok := builtInRoles[id]
		require.True(t, ok, "roleIds.%s = %s is not a built-in role this test knows; add it to builtInRoles from Azure's built-in roles reference", key, id)
		require.Equal(t, lowerCamel(name), key, "roleIds.%s holds the id of %s", key, name)
	}
}

func TestStorageRolesAreWhatTheHostNeeds(t *testing.T) {
	infra := loadInfra(t)
	roles := infra.module(t, "modules/roles.bicep")
	storage := roles.existingOfType(t, "Microsoft.Storage/storageAccounts@")

	var all []map[string]any
	for _, bindings := range loadFunctions(t) {
		all = append(all, bindings...)
	}
	want := hostStorageRoles(all)

	var got []string
	for _, a := range roleAssignments(t, roles) {
		if a.scope == storage {
			got = append(got, a.role)
		}
	}
	slices.Sort(got)
	require.Equal(t, want, got,
		"the app's roles on the host storage account must be exactly what its bindings need: "+
			"a missing one breaks the host (or loses its diagnostic events), an extra one is more than least privilege")

	// The host storage account is the one AzureWebJobsStorage names.
	arg, ok := infra.moduleParam(t, "modules/roles.bicep", "storageAccountName")
	require.True(t, ok)
	require.Equal(t, infra.settings["AzureWebJobsStorage__accountName"].Text(), arg.Text(),
		"roles.bicep grants storage roles on another account than AzureWebJobsStorage__accountName")
}

func TestOtherRolesOfTheApp(t *testing.T) {
	roles := loadInfra(t).module(t, "modules/roles.bicep")
	scopes := map[string]string{
		roles.existingOfType(t, "Microsoft.Devices/IotHubs@"):         "hub",
		roles.existingOfType(t, "Microsoft.KeyVault/vaults@"):         "vault",
		roles.existingOfType(t, "Microsoft.Insights/components@"):     "appInsights",
		roles.existingOfType(t, "Microsoft.Storage/storageAccounts@"): "storage",
	}
	got := map[string][]string{}
	for _, a := range roleAssignments(t, roles) {
		scope, ok := scopes[a.scope]
		require.True(t, ok, "role assignment %s is scoped to %s, which is none of the app's dependencies", a.symbol, a.scope)
		got[scope] = append(got[scope], a.role)
	}
	require.Equal(t, []string{"custom"}, got["hub"], "one assignment on the hub, whose role iotHubDataRole picks")
	require.Equal(t, []string{"Key Vault Secrets User"}, got["vault"])
	require.Equal(t, []string{"Monitoring Metrics Publisher"}, got["appInsights"])
}

// The routine deployment must not write a role definition: that needs
// Microsoft.Authorization/roleDefinitions/write, which neither Contributor
// nor Role Based Access Control Administrator has (only Owner and User Access
// Administrator), on every run.
func TestRoutineDeploymentWritesNoRoleDefinition(t *testing.T) {
	infra := loadInfra(t)
	files := map[string]*bicep.File{"main.bicep": infra.main}
	for path, f := range infra.modules {
		files[path] = f
	}
	for path, f := range files {
		for _, d := range f.All("resource") {
			require.False(t, strings.HasPrefix(d.Type, "Microsoft.Authorization/roleDefinitions@"),
				"%s writes role definition %s on every deployment; define it in infra/iothub-role.bicep instead", path, d.Name)
		}
	}
}

func TestCustomRoleTemplate(t *testing.T) {
	f := parseFile(t, "iothub-role.bicep")
	var defs []bicep.Decl
	for _, d := range f.All("resource") {
		if strings.HasPrefix(d.Type, "Microsoft.Authorization/roleDefinitions@") {
			defs = append(defs, d)
		}
	}
	require.Len(t, defs, 1, "iothub-role.bicep must define exactly one role")
	body, _ := defs[0].Value.Body()

	typ, _ := body.Path("properties", "type")
	v, _ := typ.Literal()
	require.Equal(t, "CustomRole", v)

	scopes, _ := body.Path("properties", "assignableScopes")
	require.Equal(t, "[ resourceGroup () . id ]", scopes.Text(), "the role must be assignable in its resource group only")

	perms, _ := body.Path("properties", "permissions")
	list, ok := perms.Array()
	require.True(t, ok && len(list.Elems) == 1, "one permission block, got %s", perms.Text())
	perm, ok := list.Elems[0].Object()
	require.True(t, ok)
	literals := func(key string) []string {
		e, ok := perm.Get(key)
		require.True(t, ok, "permissions.%s must be set (to [] when empty)", key)
		a, ok := e.Array()
		require.True(t, ok, "permissions.%s must be an array literal", key)
		var out []string
		for _, item := range a.Elems {
			s, ok := item.Literal()
			require.True(t, ok, "permissions.%s: %s is not a literal", key, item.Text())
			out = append(out, s)
		}
		return out
	}
	require.Empty(t, literals("actions"), "the role needs no control-plane action")
	require.Empty(t, literals("notActions"))
	require.Empty(t, literals("notDataActions"))
	require.ElementsMatch(t, []string{
		"Microsoft.Devices/IotHubs/directMethods/invoke/action", // RebootDevice
		"Microsoft.Devices/IotHubs/twins/read",                  // RebootStatus, RebootReport (GET twin, device query)
		"Microsoft.Devices/IotHubs/twins/write",                 // RebootDevice's Idempotency-Key claim, fleet reboots' tags (PATCH tags)
		"Microsoft.Devices/IotHubs/jobs/read",                   // fleet reboots: GET /jobs/v2/{id}
		"Microsoft.Devices/IotHubs/jobs/write",                  // fleet reboots: PUT /jobs/v2/{id}, POST /jobs/v2/{id}/cancel
	}, literals("dataActions"))

	// roles.bicep assigns the role by the same name, and deploy.sh finds it
	// by its roleName prefix.
	nameExpr, _ := body.Get("name")
	name, ok := nameExpr.IdentName()
	require.True(t, ok, "the role's name must be a var, so roles.bicep can compute the same")
	nameVar, ok := f.Find("var", name)
	require.True(t, ok)
	const wantName = "guid ( resourceGroup () . id , 'iothub-reboot-invoker' )"
	require.Equal(t, wantName, nameVar.Value.Text())

	roles := loadInfra(t).module(t, "modules/roles.bicep")
	assigned, ok := roles.file.Find("var", "rebootInvokerRoleName")
	require.True(t, ok, "roles.bicep must name the custom role in var rebootInvokerRoleName")
	require.Equal(t, wantName, assigned.Value.Text(), "roles.bicep and iothub-role.bicep disagree on the custom role's name")
	idVar, ok := roles.file.Find("var", "iotHubRoleDefinitionId")
	require.True(t, ok)
	require.Contains(t, idVar.Value.Text(), "subscriptionResourceId ( 'Microsoft.Authorization/roleDefinitions' ,",
		"a role assignment names its role by the subscription-level id /subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}")

	roleName, _ := body.Path("properties", "roleName")
	require.True(t, strings.HasPrefix(roleName.Text(), "'"+customRolePrefix), "roleName %s", roleName.Text())
	script, err := os.ReadFile("deploy.sh")
	require.NoError(t, err)
	require.True(t, strings.Contains(string(script), customRolePrefix), "deploy.sh must look the custom role up by its roleName prefix %q", customRolePrefix)
}

const customRolePrefix = "IoT Hub reboot invoker ("

// existingOfType returns the symbolic name of the module's one `existing`
// resource of the type.
func (m bicepModule) existingOfType(t *testing.T, typePrefix string) string {
	t.Helper()
	var found []string
	for _, d := range m.file.All("resource existing") {
		if strings.HasPrefix(d.Type, typePrefix) {
			found = append(found, d.Name)
		}
	}
	require.Len(t, found, 1, "%s: want one existing %s resource", m.path, typePrefix)
	return found[0]
}
