package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// The admin commands work on a data dir whether or not a hub runs on it
// (localhub's …In functions choose the REST API or the registry file).

func connectionStringCommand(fs *flag.FlagSet) func(context.Context, invocation) error {
	dataDir := dataDirFlag(fs)
	policy := fs.String("policy", "iothubowner", "shared access `POLICY` name")
	return func(ctx context.Context, inv invocation) error {
		cs, err := localhub.ServiceConnectionStringIn(ctx, *dataDir, *policy)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(inv.stdout, cs)
		return err
	}
}

func eventHubConnectionStringCommand(fs *flag.FlagSet) func(context.Context, invocation) error {
	dataDir := dataDirFlag(fs)
	policy := fs.String("policy", "service", "shared access `POLICY` name (it needs ServiceConnect)")
	emulator := fs.Bool("emulator", false, "print the UseDevelopmentEmulator=true form for the plain AMQP listener (the Functions host's Event Hubs trigger under func start)")
	return func(ctx context.Context, inv invocation) error {
		cs, err := localhub.EventHubConnectionStringIn(ctx, *dataDir, *policy, *emulator)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(inv.stdout, cs)
		return err
	}
}

func deviceCreateCommand(fs *flag.FlagSet) func(context.Context, invocation) error {
	dataDir := dataDirFlag(fs)
	return func(ctx context.Context, inv invocation) error {
		cs, err := localhub.CreateDeviceIn(ctx, *dataDir, inv.args[0])
		if errors.Is(err, localhub.ErrDeviceExists) {
			return fmt.Errorf("%w (\"localhub device show %s\" prints its connection string)", err, inv.args[0])
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(inv.stdout, cs)
		return err
	}
}

func deviceShowCommand(fs *flag.FlagSet) func(context.Context, invocation) error {
	dataDir := dataDirFlag(fs)
	return func(ctx context.Context, inv invocation) error {
		cs, err := localhub.DeviceConnectionStringIn(ctx, *dataDir, inv.args[0])
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(inv.stdout, cs)
		return err
	}
}

func deviceListCommand(fs *flag.FlagSet) func(context.Context, invocation) error {
	dataDir := dataDirFlag(fs)
	return func(ctx context.Context, inv invocation) error {
		devices, err := localhub.ListDevicesIn(ctx, *dataDir)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(inv.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE ID\tSTATUS\tCONNECTION")
		for _, d := range devices {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", d.DeviceID, d.Status, d.ConnectionState)
		}
		return tw.Flush()
	}
}
