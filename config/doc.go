// Package config is the tcs-agent configuration: a TOML file decoded onto a
// plain struct whose zero-config values come from [Default].
//
// The model: [Load] (or [Parse], which takes the bytes and the environment)
// reads the file strictly — a TOML syntax error is reported with its line, an
// unknown key, a misspelled section or a value of the wrong type is an error
// that names the key, and every such problem in the file is reported at once,
// in file order. Keys absent from the file keep their defaults; two defaults
// depend on other keys and are derived after decoding: [service] advertise
// from [service] listen, and [directory] renew_deadline from
// [directory] lease_ttl. Relative file names (bind_password_file, ca_file)
// are resolved against the directory of the configuration file, the bind
// password is read, and finally [Config.Validate] checks every value and the
// rules between them (renew_deadline < lease_ttl, no start_tls with ldaps://,
// ...) and again reports all problems together.
//
// Every error names the file, the key as "[section] key", and the problem:
//
//	tcs.toml: [directory] lease_ttl: "5x" is not a duration: time: unknown unit "x" in duration "5x"
//	tcs.toml: unknown key [service] nmae (did you mean name?)
//	tcs.toml: [service] name is required
//	tcs.toml line 3: expected value but found '\n' instead
//
// The bind password is never part of an error, and a Config never prints it:
// %v, %+v and %#v show the configuration without it. [Config.BindPassword]
// is the only way to read it.
//
// Validate does no I/O: it checks values only. Reading bind_password_file
// and ca_file, and deriving defaults, is the work of Load and Parse.
package config
