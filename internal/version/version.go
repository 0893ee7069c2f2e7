// Package version holds the build's version, set by the Makefile with
// -ldflags "-X tcs/internal/version.Version=...".
package version

import "runtime/debug"

// Version is the tcs version; "dev" when not set at build time.
var Version = "dev"

// String returns the version and, when known, the VCS revision.
func String() string {
	v := Version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 && v == "dev" {
				v += "+" + s.Value[:12]
			}
		}
		v += " " + info.GoVersion
	}
	return v
}
