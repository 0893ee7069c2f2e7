package main

import (
	"github.com/sirupsen/logrus"

	"tcs/ldapdir"
	"tcs/statuspage"
)

// statusPage is the live status page served at "/" and under "/ui/": the
// swarm as the directory shows it, for the agent called name. Close it
// after the HTTP server has stopped.
func statusPage(name string, dir *ldapdir.Dir, log logrus.FieldLogger) *statuspage.Page {
	return statuspage.New(statuspage.Options{Agent: name, Directory: dir, Logger: log})
}
