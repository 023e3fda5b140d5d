package registry

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Notification sources, schemas and operation types (reference §4).
const (
	SourceTwinChangeEvents      = "twinChangeEvents"
	SourceDeviceLifecycleEvents = "deviceLifecycleEvents"

	SchemaTwinChange      = "twinChangeNotification"
	SchemaDeviceLifecycle = "deviceLifecycleNotification"

	OpUpdateTwin           = "updateTwin"
	OpReplaceTwin          = "replaceTwin"
	OpCreateDeviceIdentity = "createDeviceIdentity"
	OpDeleteDeviceIdentity = "deleteDeviceIdentity"
)

// sectionObject writes a property section as IoT Hub orders it: the
// properties, then "$metadata" (when withMeta), then "$version".
func sectionObject(root *node, version int64, sec section, withMeta bool) object {
	keys := root.sortedKeys()
	o := make(object, 0, len(keys)+2)
	for _, k := range keys {
		o = append(o, member{k, root.kids[k].value()})
	}
	if withMeta {
		o = append(o, member{"$metadata", root.metadata(sec.stampsVersion())})
	}
	return append(o, member{"$version", version})
}

// changedSection is a section in an updateTwin body: the patch as applied
// (null for deleted keys), the metadata of what it changed, the new $version.
func changedSection(root *node, patch map[string]any, version int64, sec section) object {
	o := patchObject(patch)
	o = append(o, member{"$metadata", root.patchMetadata(patch, sec.stampsVersion())})
	return append(o, member{"$version", version})
}

func patchObject(patch map[string]any) object {
	keys := slices.Sorted(maps.Keys(patch))
	o := make(object, 0, len(keys)+2)
	for _, k := range keys {
		o = append(o, member{k, patch[k]})
	}
	return o
}

// fullTwinBody is the twin as lifecycle and replaceTwin events carry it.
func fullTwinBody(id string, rec *twinRecord) object {
	o := object{
		{"deviceId", id},
		{"etag", twinETag(rec.ETag)},
		{"version", rec.Version},
	}
	if len(rec.Tags.kids) > 0 {
		o = append(o, member{"tags", rec.Tags.value()})
	}
	return append(o, member{"properties", object{
		{"desired", sectionObject(rec.Desired, rec.DesiredVersion, sectionDesired, true)},
		{"reported", sectionObject(rec.Reported, rec.ReportedVersion, sectionReported, true)},
	}})
}

func lifecycleNotification(id, op string, rec *twinRecord, at time.Time) Notification {
	return Notification{
		DeviceID: id,
		Source:   SourceDeviceLifecycleEvents,
		Schema:   SchemaDeviceLifecycle,
		OpType:   op,
		Body:     mustMarshal(fullTwinBody(id, rec)),
		Time:     at,
	}
}

func replaceNotification(id string, rec *twinRecord, at time.Time) Notification {
	return Notification{
		DeviceID:       id,
		Source:         SourceTwinChangeEvents,
		Schema:         SchemaTwinChange,
		OpType:         OpReplaceTwin,
		Body:           mustMarshal(fullTwinBody(id, rec)),
		Time:           at,
		DesiredPatch:   mustMarshal(sectionObject(rec.Desired, rec.DesiredVersion, sectionDesired, false)),
		DesiredVersion: rec.DesiredVersion,
	}
}

// patchNotification is the updateTwin event of a service patch; tags or
// desired is nil when the patch did not address it.
func patchNotification(id string, rec *twinRecord, tags, desired map[string]any, at time.Time) Notification {
	body := object{{"version", rec.Version}}
	if tags != nil {
		body = append(body, member{"tags", patchObject(tags)})
	}
	n := Notification{
		DeviceID: id,
		Source:   SourceTwinChangeEvents,
		Schema:   SchemaTwinChange,
		OpType:   OpUpdateTwin,
		Time:     at,
	}
	if desired != nil {
		body = append(body, member{"properties", object{
			{"desired", changedSection(rec.Desired, desired, rec.DesiredVersion, sectionDesired)},
		}})
		n.DesiredPatch = mustMarshal(append(patchObject(desired), member{"$version", rec.DesiredVersion}))
		n.DesiredVersion = rec.DesiredVersion
	}
	n.Body = mustMarshal(body)
	return n
}

// reportedNotification is the updateTwin event of a device's reported
// patch. The docs show only desired and tags; the reported form follows by
// analogy (reference §4, unconfirmed).
func reportedNotification(id string, rec *twinRecord, reported map[string]any, at time.Time) Notification {
	return Notification{
		DeviceID: id,
		Source:   SourceTwinChangeEvents,
		Schema:   SchemaTwinChange,
		OpType:   OpUpdateTwin,
		Time:     at,
		Body: mustMarshal(object{
			{"version", rec.Version},
			{"properties", object{
				{"reported", changedSection(rec.Reported, reported, rec.ReportedVersion, sectionReported)},
			}},
		}),
	}
}

// mustMarshal encodes bodies built from validated twin data, which always
// encode; a failure is a bug in this package.
func mustMarshal(v any) json.RawMessage {
	b, err := marshalJSON(v)
	if err != nil {
		panic(fmt.Sprintf("registry: encode notification: %v", err))
	}
	return b
}
