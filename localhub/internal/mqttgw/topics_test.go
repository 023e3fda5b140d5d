package mqttgw

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseTopic(t *testing.T) {
	tests := []struct {
		topic   string
		want    Topic
		wantErr bool
	}{
		{topic: "devices/d1/messages/events/", want: Topic{Kind: TopicTelemetry, DeviceID: "d1"}},
		{
			topic: "devices/d1/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&%24.ctime=2024-05-01T10%3A00%3A00.123Z&k=a%20b",
			want: Topic{Kind: TopicTelemetry, DeviceID: "d1", Properties: []Property{
				{Key: "$.ct", Value: "application/json"}, {Key: "$.ce", Value: "utf-8"}, {Key: "$.ctime", Value: "2024-05-01T10:00:00.123Z"}, {Key: "k", Value: "a b"},
			}},
		},
		{
			topic: "devices/d1/messages/events/$.mid=1&flag&empty=&&plus=a+b",
			want: Topic{Kind: TopicTelemetry, DeviceID: "d1", Properties: []Property{
				{Key: "$.mid", Value: "1"}, {Key: "flag", Value: ""}, {Key: "empty", Value: ""}, {Key: "plus", Value: "a+b"},
			}},
		},
		{topic: "devices/d+1#/messages/events/", want: Topic{Kind: TopicTelemetry, DeviceID: "d+1#"}},
		{topic: "$iothub/methods/res/200/?$rid=1", want: Topic{Kind: TopicMethodResponse, Status: 200, RID: "1"}},
		{topic: "$iothub/methods/res/-1/?$rid=ab", want: Topic{Kind: TopicMethodResponse, Status: -1, RID: "ab"}},
		{topic: "$iothub/twin/GET/?$rid=1f", want: Topic{Kind: TopicTwinGet, RID: "1f"}},
		{
			topic: "$iothub/twin/PATCH/properties/reported/?$rid=5b6e3c0e-8f1d-4d7b-9a43-1c2d3e4f5a6b&$version=4",
			want:  Topic{Kind: TopicTwinPatchReported, RID: "5b6e3c0e-8f1d-4d7b-9a43-1c2d3e4f5a6b"},
		},

		{topic: "devices/d1/messages/events", wantErr: true},
		{topic: "devices//messages/events/", wantErr: true},
		{topic: "devices/d1/messages/devicebound/", wantErr: true},
		{topic: "devices/d1/modules/m1/messages/events/", wantErr: true},
		{topic: "devices/d1/messages/events/k=%zz", wantErr: true},
		{topic: "$iothub/methods/res/ok/?$rid=1", wantErr: true},
		{topic: "$iothub/methods/res/200?$rid=1", wantErr: true},
		{topic: "$iothub/methods/res/200/$rid=1", wantErr: true},
		{topic: "$iothub/methods/res/200/?rid=1", wantErr: true},
		{topic: "$iothub/twin/GET/?$rid=", wantErr: true},
		{topic: "$iothub/twin/GET/", wantErr: true},
		{topic: "$iothub/twin/PATCH/properties/desired/?$rid=1", wantErr: true},
		{topic: "$iothub/methods/POST/reboot/?$rid=1", wantErr: true},
		{topic: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseTopic(tt.topic)
		if tt.wantErr {
			require.ErrorIs(t, err, ErrTopic, "ParseTopic(%q)", tt.topic)
			continue
		}
		require.NoError(t, err, "ParseTopic(%q)", tt.topic)
		require.Equal(t, tt.want, got, "ParseTopic(%q)", tt.topic)
	}
}

func TestTopicStringEncodesLikeTheGoSDK(t *testing.T) {
	topic := Topic{Kind: TopicTelemetry, DeviceID: "d1", Properties: []Property{
		{Key: "$.mid", Value: "m 1"}, {Key: "k/&=", Value: "v?#%"},
	}}
	require.Equal(t, "devices/d1/messages/events/%24.mid=m%201&k%2F%26%3D=v%3F%23%25", topic.String())
}

// FuzzParseTopic checks that ParseTopic never panics and that whatever it
// accepts formats back to a topic that parses to the same value.
func FuzzParseTopic(f *testing.F) {
	for _, seed := range []string{
		// Go SDK (amenzhinsky): url.Values.Encode, '+' as %20, hex twin rids.
		"devices/d1/messages/events/%24.ct=application%2Fjson&%24.ctime=2024-05-01T10%3A00%3A00.123Z&%24.mid=abc&temp=21.5",
		"devices/d1/messages/events/",
		"$iothub/methods/res/200/?$rid=1",
		"$iothub/twin/GET/?$rid=a",
		"$iothub/twin/PATCH/properties/reported/?$rid=1f",
		// Node SDK: querystring.stringify, uuid twin rids, $.ifid/$.sub.
		"devices/my-device/messages/events/%24.mid=42&%24.ifid=urn%3Aazureiot%3AModelDiscovery&%24.sub=thermostat1&alert=true",
		"$iothub/methods/res/500/?$rid=3",
		"$iothub/twin/PATCH/properties/reported/?$rid=5b6e3c0e-8f1d-4d7b-9a43-1c2d3e4f5a6b",
		"$iothub/twin/GET/?$rid=5b6e3c0e-8f1d-4d7b-9a43-1c2d3e4f5a6b",
		// Malformed.
		"devices/d1/messages/events/k=%zz&&=x",
		"$iothub/methods/res/+7/?$rid=%41&$rid=b",
		"devices/%/messages/events/a=b=c",
		"$iothub/twin/PATCH/properties/desired/?$version=3",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		got, err := ParseTopic(topic)
		if err != nil {
			if !errors.Is(err, ErrTopic) {
				t.Fatalf("ParseTopic(%q) error %v does not wrap ErrTopic", topic, err)
			}
			return
		}
		again, err := ParseTopic(got.String())
		if err != nil {
			t.Fatalf("ParseTopic(%q).String() = %q does not parse: %v", topic, got.String(), err)
		}
		require.Equal(t, got, again, "ParseTopic(%q) round trip through %q", topic, got.String())
	})
}
