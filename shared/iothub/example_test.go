package iothub_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// This example calls a direct method on a device connected to a local hub.
// Against Azure, pass the portal's connection string and nil options.
func ExampleClient_InvokeMethod() {
	ctx := context.Background()
	// In tests, localhubtest.New(t, nil) does this and registers Close.
	hub, err := localhub.Start(ctx, localhub.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()

	// A device that answers "reboot", played by paho over MQTT/TLS.
	deviceConnStr, err := hub.CreateDevice("thermostat-1")
	if err != nil {
		log.Fatal(err)
	}
	device, err := localhubtest.StartDevice(hub, deviceConnStr, localhubtest.Reply(200, `"Reboot started"`))
	if err != nil {
		log.Fatal(err)
	}
	defer device.Close()

	connStr, err := hub.ServiceConnectionString("service")
	if err != nil {
		log.Fatal(err)
	}
	client, err := iothub.NewClientFromConnectionString(connStr, &iothub.ClientOptions{
		Endpoint:      hub.HTTPSURL(),                                    // the local hub's port
		ClientOptions: azcore.ClientOptions{Transport: hub.HTTPClient()}, // trusts the local CA
	})
	if err != nil {
		log.Fatal(err)
	}

	resp, err := client.InvokeMethod(ctx, "thermostat-1", iothub.MethodRequest{
		MethodName:      "reboot",
		ResponseTimeout: 10 * time.Second,
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status, string(resp.Payload))

	// A device that is not connected: check the IoT Hub error code.
	if _, err := hub.CreateDevice("thermostat-2"); err != nil {
		log.Fatal(err)
	}
	_, err = client.InvokeMethod(ctx, "thermostat-2", iothub.MethodRequest{MethodName: "reboot"}, nil)
	var respErr *azcore.ResponseError
	if errors.As(err, &respErr) && respErr.ErrorCode == string(iothub.DeviceNotOnline) {
		fmt.Println(respErr.StatusCode, respErr.ErrorCode)
	}
	// Output:
	// 200 "Reboot started"
	// 404 DeviceNotOnline
}
