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

// This example reboots every device of a site with a scheduled job and
// reads each device's outcome. Against Azure, the policy needs the
// registry rights for the job and ServiceConnect for the devices.jobs
// query (iothubowner has both).
func ExampleClient_ScheduleDeviceMethod() {
	ctx := context.Background()
	hub, err := localhub.Start(ctx, localhub.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	for _, id := range []string{"plant7-a", "plant7-b"} {
		cs, err := hub.CreateDevice(id)
		if err != nil {
			log.Fatal(err)
		}
		device, err := localhubtest.StartDevice(hub, cs, localhubtest.Reply(200, `"Reboot started"`))
		if err != nil {
			log.Fatal(err)
		}
		defer device.Close()
	}
	connStr, err := hub.ServiceConnectionString("iothubowner")
	if err != nil {
		log.Fatal(err)
	}
	client, err := iothub.NewClientFromConnectionString(connStr, &iothub.ClientOptions{
		Endpoint:      hub.HTTPSURL(),
		ClientOptions: azcore.ClientOptions{Transport: hub.HTTPClient()},
	})
	if err != nil {
		log.Fatal(err)
	}

	// Safe to send again with the same id: an existing identical job is
	// returned (Existing), never created twice.
	job, err := client.ScheduleDeviceMethod(ctx, "reboot-plant7-wave1", "STARTSWITH(deviceId, 'plant7-')",
		iothub.MethodRequest{MethodName: "reboot", ResponseTimeout: 30 * time.Second}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.JobID, job.Status)

	for !job.Status.Finished() {
		time.Sleep(100 * time.Millisecond)
		got, err := client.GetJob(ctx, job.JobID, nil)
		if err != nil {
			log.Fatal(err)
		}
		job.Job = got.Job
	}
	fmt.Println(job.Status, job.Statistics.SucceededCount, "of", job.Statistics.DeviceCount)

	pager := client.NewDeviceJobsPager("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'reboot-plant7-wave1'", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, d := range page.DeviceJobs {
			fmt.Println(d.DeviceID, d.Status, d.MethodResponse.Status, string(d.MethodResponse.Payload))
		}
	}
	// Output:
	// reboot-plant7-wave1 queued
	// completed 2 of 2
	// plant7-a completed 200 "Reboot started"
	// plant7-b completed 200 "Reboot started"
}
