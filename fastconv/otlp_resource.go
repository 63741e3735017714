package fastconv

import (
	"slices"
	"time"

	occommonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	ocresourcepb "github.com/census-instrumentation/opencensus-proto/gen-go/resource/v1"

	commonpb "github.com/zerocensus/ocagent/internal/otlpproto/common/v1"
	resourcepb "github.com/zerocensus/ocagent/internal/otlpproto/resource/v1"
)

// Resource attribute keys of the translation (OpenTelemetry semantic
// conventions v1.6.1, and the Collector's occonventions).
const (
	keyServiceName     = "service.name"
	keyHostName        = "host.name"
	keyPID             = "process.pid"
	keySDKVersion      = "telemetry.sdk.version"
	keySDKLanguage     = "telemetry.sdk.language"
	keyStartTime       = "opencensus.starttime"
	keyExporterVersion = "opencensus.exporterversion"
	keyResourceType    = "opencensus.resourcetype"
	keyCloudZone       = "cloud.zone" // OpenCensus's resourcekeys.CloudKeyZone
	keyAvailZone       = "cloud.availability_zone"
)

// languages are the telemetry.sdk.language values of OpenCensus's
// LibraryInfo languages.
var languages = map[occommonpb.LibraryInfo_Language]string{
	1: "cpp", 2: "dotnet", 3: "erlang", 4: "go", 5: "java", 6: "nodejs", 7: "php", 8: "python", 9: "ruby", 10: "webjs",
}

// Resource returns the OTLP resource the translation makes of an OpenCensus
// Node and Resource: the resource labels (cloud.zone renamed
// cloud.availability_zone), the node's attributes, then the node's service
// name, start time, host name, pid, library versions and language, and the
// resource type, each overwriting a label of the same key. Labels and node
// attributes, which OpenCensus keeps in maps, come in key order. It returns
// nil when there is nothing to say (the translation leaves the resource
// empty).
func otlpResource(node *occommonpb.Node, res *ocresourcepb.Resource) *resourcepb.Resource {
	var a attrList
	for _, k := range sortedKeys(res.GetLabels()) {
		key := k
		if k == keyCloudZone {
			key = keyAvailZone
		}
		a.str(key, res.GetLabels()[k])
	}
	for _, k := range sortedKeys(node.GetAttributes()) {
		a.str(k, node.GetAttributes()[k])
	}
	if name := node.GetServiceInfo().GetName(); name != "" {
		a.str(keyServiceName, name)
	}
	if id := node.GetIdentifier(); id != nil {
		if id.StartTimestamp != nil {
			a.str(keyStartTime, id.StartTimestamp.AsTime().Format(time.RFC3339Nano))
		}
		if id.HostName != "" {
			a.str(keyHostName, id.HostName)
		}
		if id.Pid != 0 {
			a.int(keyPID, int64(id.Pid))
		}
	}
	if li := node.GetLibraryInfo(); li != nil {
		if li.CoreLibraryVersion != "" {
			a.str(keySDKVersion, li.CoreLibraryVersion)
		}
		if li.ExporterVersion != "" {
			a.str(keyExporterVersion, li.ExporterVersion)
		}
		if lang, ok := languages[li.Language]; ok {
			a.str(keySDKLanguage, lang)
		}
	}
	if t := res.GetType(); t != "" {
		a.str(keyResourceType, t)
	}
	if len(a) == 0 {
		return nil
	}
	return &resourcepb.Resource{Attributes: a}
}

// attrList is an ordered set of attributes in which a later value of a key
// replaces the earlier one in place, as pcommon.Map's Put does.
type attrList []*commonpb.KeyValue

func (a *attrList) put(key string, v *commonpb.AnyValue) {
	for _, kv := range *a {
		if kv.Key == key {
			kv.Value = v
			return
		}
	}
	*a = append(*a, &commonpb.KeyValue{Key: key, Value: v})
}

func (a *attrList) str(key, s string) {
	a.put(key, &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}})
}

func (a *attrList) int(key string, i int64) {
	a.put(key, &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: i}})
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// WithAttributes returns res with attrs added, for the attributes of the
// OTEL_RESOURCE_ATTRIBUTES variable: they fill in keys the resource does not
// have; a key it has keeps its value (the OpenCensus Node and resource
// detector are the exporter's explicit configuration).
func otlpWithAttributes(res *resourcepb.Resource, attrs [][2]string) *resourcepb.Resource {
	if len(attrs) == 0 {
		return res
	}
	var a attrList
	if res != nil {
		a = attrList(res.Attributes)
	}
	for _, kv := range attrs {
		if !slices.ContainsFunc(a, func(x *commonpb.KeyValue) bool { return x.Key == kv[0] }) {
			a.str(kv[0], kv[1])
		}
	}
	out := &resourcepb.Resource{Attributes: a}
	if res != nil {
		out.DroppedAttributesCount = res.DroppedAttributesCount
	}
	return out
}
