package client_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"tcs/client"
	"tcs/httpapi"
)

// exampleSwarm serves two agents' real HTTP APIs on loopback ports: Japan
// (which redirects) and Texas (which owns texas-routers). In a real swarm
// these are tcs-agent processes; Stop ends them.
func exampleSwarm() (japan, texas *agent, stop func()) {
	start := func(name string) (*agent, func()) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		a := &agent{name: name, url: "http://" + ln.Addr().String()}
		a.init()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { httpapi.New(a, a, httpapi.Options{}).Serve(ctx, ln); close(done) }()
		return a, func() { cancel(); <-done }
	}
	japan, stopJ := start("tcs-japan-1")
	texas, stopT := start("tcs-texas-1")
	texas.own("texas-routers", 1, 1, "tx-rtr-01", "tx-rtr-02")
	japan.pointTo("texas-routers", texas, 1)
	return japan, texas, func() { stopJ(); stopT() }
}

// Get reads a table through any agent: the client follows the 307 to the
// set's owner and returns the rows with the owner's epoch.
func ExampleClient_Get() {
	japan, _, stop := exampleSwarm()
	defer stop()

	c, err := client.New([]string{japan.url}, client.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t, err := c.Get(ctx, "texas-routers")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(t.Set, "owner", t.Owner, "epoch", t.Epoch, "rows", len(t.Rows))
	for _, row := range t.Rows {
		fmt.Println(row[0][0])
	}
	// Output:
	// texas-routers owner tcs-texas-1 epoch 1 rows 2
	// cn=tx-rtr-01,dc=example,dc=org
	// cn=tx-rtr-02,dc=example,dc=org
}

// Watch yields the table and then every change: between changes one
// blocking request waits at the owner.
func ExampleClient_Watch() {
	japan, texas, stop := exampleSwarm()
	defer stop()

	c, _ := client.New([]string{japan.url}, client.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	for t, err := range c.Watch(ctx, "texas-routers") {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("epoch", t.Epoch, "rows", len(t.Rows))
		if n++; n == 2 {
			break
		}
		texas.own("texas-routers", 1, 2, "tx-rtr-01", "tx-rtr-02", "tx-rtr-03") // a router is added
	}
	// Output:
	// epoch 1 rows 2
	// epoch 1 rows 3
}
