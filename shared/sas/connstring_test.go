package sas_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/shared/sas"
)

func TestParseConnectionString(t *testing.T) {
	t.Parallel()
	const key = "MDEyMzQ1Njc4OWFiY2RlZg==" // base64 with '=' padding
	tests := []struct {
		name          string
		in            string
		want          sas.ConnectionString
		wantCanonical string
	}{
		{
			name:          "service",
			in:            "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + key,
			want:          sas.ConnectionString{HostName: "myhub.azure-devices.net", SharedAccessKeyName: "iothubowner", SharedAccessKey: key},
			wantCanonical: "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + key,
		},
		{
			name:          "device",
			in:            "HostName=localhost;DeviceId=d1;SharedAccessKey=" + key,
			want:          sas.ConnectionString{HostName: "localhost", DeviceID: "d1", SharedAccessKey: key},
			wantCanonical: "HostName=localhost;DeviceId=d1;SharedAccessKey=" + key,
		},
		{
			name:          "module",
			in:            "HostName=localhost;DeviceId=d1;ModuleId=m1;SharedAccessKey=" + key,
			want:          sas.ConnectionString{HostName: "localhost", DeviceID: "d1", ModuleID: "m1", SharedAccessKey: key},
			wantCanonical: "HostName=localhost;DeviceId=d1;ModuleId=m1;SharedAccessKey=" + key,
		},
		{
			name:          "node device with gateway",
			in:            "HostName=myhub.azure-devices.net;DeviceId=d1;SharedAccessKey=" + key + ";GatewayHostName=127.0.0.1",
			want:          sas.ConnectionString{HostName: "myhub.azure-devices.net", DeviceID: "d1", SharedAccessKey: key, GatewayHostName: "127.0.0.1"},
			wantCanonical: "HostName=myhub.azure-devices.net;DeviceId=d1;SharedAccessKey=" + key + ";GatewayHostName=127.0.0.1",
		},
		{
			name:          "keys in any case and order, spaces and trailing separator",
			in:            " sharedaccesskey=" + key + "; DEVICEID = d1 ;hostname=localhost;",
			want:          sas.ConnectionString{HostName: "localhost", DeviceID: "d1", SharedAccessKey: key},
			wantCanonical: "HostName=localhost;DeviceId=d1;SharedAccessKey=" + key,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := sas.ParseConnectionString(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.wantCanonical, got.String())
		})
	}
}

func TestParseConnectionStringErrors(t *testing.T) {
	t.Parallel()
	const key = "MDEyMzQ1Njc4OWFiY2RlZg=="
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty", "", "empty connection string"},
		{"blank", "  ", "empty connection string"},
		{"empty segment", "HostName=h;;DeviceId=d;SharedAccessKey=" + key, "segment 2: want Key=Value"},
		{"garbage segment", "HostName=h;garbage;SharedAccessKey=" + key, "segment 2: want Key=Value"},
		{"unknown key", "HostName=h;DeviceId=d;SharedAccessKey=" + key + ";Foo=bar", `unknown key "Foo"`},
		{"duplicate key", "HostName=h;DeviceId=d;HostName=x;SharedAccessKey=" + key, "duplicate key HostName"},
		{"duplicate key in other case", "HostName=h;DeviceId=d;hostname=x;SharedAccessKey=" + key, "duplicate key HostName"},
		{"empty value", "HostName=h;DeviceId=;SharedAccessKey=" + key, "empty value for DeviceId"},
		{"missing host", "DeviceId=d;SharedAccessKey=" + key, "missing HostName"},
		{"missing key", "HostName=h;DeviceId=d", "missing SharedAccessKey"},
		{"neither policy nor device", "HostName=h;SharedAccessKey=" + key, "need SharedAccessKeyName"},
		{"module without device", "HostName=h;SharedAccessKeyName=p;ModuleId=m;SharedAccessKey=" + key, "ModuleId without DeviceId"},
		{"key not base64", "HostName=h;DeviceId=d;SharedAccessKey=sec*ret", "not base64"},
		{"shared access signature strings are not supported", "HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h", "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := sas.ParseConnectionString(tt.in)
			require.ErrorIs(t, err, sas.ErrMalformed)
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), "sec*ret", "errors must not echo key material")
		})
	}
}
