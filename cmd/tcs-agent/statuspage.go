package main

import (
	"net/http"

	"tcs/agent"
)

// statusPage is the page served at "/" (nil: httpapi's built-in page until
// the live status page exists).
func statusPage(*agent.Agent) http.Handler { return nil }
