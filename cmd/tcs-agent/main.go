// Command tcs-agent is one Table Cache Service agent of a tcs swarm.
//
//	tcs-agent run --config FILE.toml      join the swarm and serve
//	tcs-agent status --config FILE.toml   print who owns which SmartSet
//	tcs-agent get --config FILE.toml SET [--watch] [--format json|csv]
//	                                      print a SmartSet's table (and every change)
//	tcs-agent version                     print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"tcs/config"
	"tcs/internal/version"
	"tcs/ldapdir"
)

const usage = `usage:
  tcs-agent run --config FILE.toml      join the swarm and serve
  tcs-agent status --config FILE.toml   print who owns which SmartSet
  tcs-agent get --config FILE.toml SET [--watch] [--format json|csv]
                                        print a SmartSet's table (--watch: and every change)
  tcs-agent version                     print the version
`

func main() {
	os.Exit(mainCode(os.Args[1:], os.Stdout, os.Stderr))
}

func mainCode(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "tcs-agent", version.String())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "run", "status", "get":
	default:
		fmt.Fprintf(stderr, "tcs-agent: unknown command %q\n%s", cmd, usage)
		return 2
	}
	fs := flag.NewFlagSet("tcs-agent "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (TOML)")
	watch := false
	if cmd == "status" || cmd == "get" {
		fs.BoolVar(&watch, "watch", false, "refresh the table live")
	}
	format := "json"
	if cmd == "get" {
		fs.StringVar(&format, "format", "json", "json or csv")
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	var set string
	if cmd == "get" { // get SET, with flags before or after it
		if fs.NArg() == 0 {
			fmt.Fprintln(stderr, "tcs-agent get: the name of a SmartSet is required")
			return 2
		}
		set = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return 2
		}
		if format != "json" && format != "csv" {
			fmt.Fprintf(stderr, "tcs-agent get: --format %q: use json or csv\n", format)
			return 2
		}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tcs-agent %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return 2
	}
	if *path == "" {
		fmt.Fprintf(stderr, "tcs-agent %s: --config FILE is required\n", cmd)
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "tcs-agent: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch cmd {
	case "run":
		err = run(ctx, cfg, stderr)
	case "status":
		err = status(ctx, cfg, stdout, watch)
	case "get":
		err = get(ctx, cfg, stdout, stderr, set, watch, format)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tcs-agent %s: %v\n", cmd, err)
		if errors.Is(err, ldapdir.ErrNameHeld) {
			return exitNameHeld
		}
		return 1
	}
	return 0
}

// exitNameHeld is the exit status of `run` when another live process holds
// the agent's name (at start, or after this one lost its lease to it):
// distinct, so that a supervisor can be told not to restart it in a loop
// (systemd: RestartPreventExitStatus=3).
const exitNameHeld = 3
