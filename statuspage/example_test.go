package statuspage_test

import (
	"log"
	"net/http"
	"os"

	"tcs/ldapdir"
	"tcs/statuspage"
)

// Serve the status page of agent tcs-texas-1 at "/" and under "/ui/". It
// watches the directory only while a browser has it open.
func Example() {
	// The agent's own account: anonymous clients see only the root DSE.
	dir, err := ldapdir.Open(ldapdir.Config{URL: "ldap://127.0.0.1:3890", BaseDN: "dc=example,dc=org",
		BindDN: "cn=tcs-texas-1,ou=agents,dc=example,dc=org", BindPassword: os.Getenv("TCS_BIND_PASSWORD")})
	if err != nil {
		log.Fatal(err)
	}
	defer dir.Close()
	page := statuspage.New(statuspage.Options{Agent: "tcs-texas-1", Directory: dir})
	defer page.Close() // after the server has stopped

	mux := http.NewServeMux()
	mux.Handle("/", page)
	srv := &http.Server{Addr: "127.0.0.1:8082", Handler: mux}
	// srv.ListenAndServe(); srv.Shutdown ends the page's event streams,
	// so a browser left open does not hold up a graceful shutdown.
	_ = srv
}
