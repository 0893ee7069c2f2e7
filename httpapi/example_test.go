package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"tcs/httpapi"
	"tcs/tablecache"
)

// exampleSwarm is an agent that owns the set "dallas" at epoch 3.
type exampleSwarm struct{}

func (exampleSwarm) Name() string { return "tcs-texas-1" }
func (exampleSwarm) Sets(ctx context.Context) ([]httpapi.SetInfo, error) {
	return []httpapi.SetInfo{{Name: "dallas", Location: "Texas", Owner: "tcs-texas-1", OwnerLive: true,
		OwnerEndpoint: "http://127.0.0.1:8082", Epoch: 3, State: "optimal"}}, nil
}
func (s exampleSwarm) Set(ctx context.Context, name string) (httpapi.SetInfo, error) {
	if name != "dallas" {
		return httpapi.SetInfo{}, httpapi.ErrUnknownSet
	}
	sets, _ := s.Sets(ctx)
	return sets[0], nil
}
func (exampleSwarm) Owns(name string) (int64, bool) { return 3, name == "dallas" }
func (exampleSwarm) Fenced() bool                   { return false }
func (exampleSwarm) Ready() (bool, string)          { return true, "" }

type exampleTables map[string]tablecache.Table

func (t exampleTables) Get(name string) (tablecache.Table, bool) { tb, ok := t[name]; return tb, ok }

func Example() {
	tables := exampleTables{"dallas": {
		Set: "dallas", Epoch: 3, ETag: `"3-9f86d081884c7d65"`, Refreshed: time.Now(),
		Columns: []string{"dn", "mail"},
		Rows:    [][][]string{{{"uid=alice,ou=people,dc=example,dc=org"}, {"alice@example.org", "a@example.org"}}},
	}}
	api := httpapi.New(exampleSwarm{}, tables, httpapi.Options{})
	ts := httptest.NewServer(api.Handler())
	defer ts.Close()

	resp, err := http.Get(ts.URL + "/v1/smartsets/dallas?format=csv")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("ETag"), "epoch", resp.Header.Get("TCS-Epoch"))
	fmt.Print(string(body))

	req, _ := http.NewRequest("GET", ts.URL+"/v1/smartsets/dallas", nil)
	req.Header.Set("If-None-Match", `"3-9f86d081884c7d65"`)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// 200 OK "3-9f86d081884c7d65-csv" epoch 3
	// dn,mail
	// "uid=alice,ou=people,dc=example,dc=org",alice@example.org;a@example.org
	// 304 Not Modified
}

func ExampleServer_Serve() {
	api := httpapi.New(exampleSwarm{}, exampleTables{}, httpapi.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/readyz")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, string(body))

	stop() // graceful shutdown: in-flight requests finish first
	fmt.Println("Serve returned", <-done)
	// Output:
	// 200 OK ok
	// Serve returned <nil>
}
