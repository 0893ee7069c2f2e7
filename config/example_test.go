package config_test

import (
	"fmt"

	"tcs/config"
)

func ExampleParse() {
	file := []byte(`
[service]
name = "tcs-texas-1"
location = "Texas"
listen = "127.0.0.1:8082"

[directory]
url = "ldap://127.0.0.1:3890"
base_dn = "dc=example,dc=org"
bind_dn = "cn=admin,dc=example,dc=org"
lease_ttl = "6s"
`)
	// Load reads the real environment; Parse takes it as a function.
	env := func(name string) string {
		if name == "TCS_BIND_PASSWORD" {
			return "secret"
		}
		return ""
	}

	cfg, err := config.Parse(file, "tcs.toml", env)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("service entry: ", cfg.ServiceDN())
	fmt.Println("advertise:     ", cfg.Service.Advertise)
	fmt.Println("renew deadline:", cfg.Directory.RenewDeadline)
	fmt.Println("watch:         ", cfg.Directory.Watch)
	fmt.Println("have password: ", cfg.BindPassword() != "")
	// Output:
	// service entry:  cn=tcs-texas-1,ou=services,dc=example,dc=org
	// advertise:      http://127.0.0.1:8082
	// renew deadline: 4s
	// watch:          syncrepl
	// have password:  true
}

func ExampleParse_errors() {
	file := []byte(`
[service]
nmae = "tcs-texas-1"
location = "Texas"

[directory]
url = "ldap://127.0.0.1:3890"
base_dn = "dc=example,dc=org"
lease_ttl = "5x"
`)
	_, err := config.Parse(file, "tcs.toml", nil)
	fmt.Println(err)

	// Once the keys are right, every value problem is reported at once.
	file = []byte(`
[service]
location = "Texas"

[directory]
url = "ldaps://ldap.example.org"
base_dn = "dc=example,dc=org"
start_tls = true
lease_ttl = "2500ms"
`)
	_, err = config.Parse(file, "tcs.toml", nil)
	fmt.Println(err)
	// Output:
	// tcs.toml: unknown key [service] nmae (did you mean name?)
	// tcs.toml: [directory] lease_ttl: "5x" is not a duration: time: unknown unit "x" in duration "5x"
	// tcs.toml: [service] name is required
	// tcs.toml: [directory] lease_ttl: 2.5s is not a whole number of seconds (the directory counts TTLs in seconds)
	// tcs.toml: [directory] start_tls: true is not allowed with an ldaps:// url
}

func ExampleConfig_Validate() {
	cfg := config.Default()
	cfg.Service.Name = "tcs-texas-1"
	cfg.Service.Location = "Texas"
	cfg.Directory.URL = "ldap://127.0.0.1:3890"
	cfg.Directory.BaseDN = "dc=example,dc=org"
	cfg.Directory.RenewDeadline = cfg.Directory.LeaseTTL
	fmt.Println(cfg.Validate())
	// Output:
	// [directory] renew_deadline: must be at most [directory] lease_ttl less 1.1s (3.9s), not 5s: slapd expires leases in whole seconds, so a lease can end up to 1s before its TTL
}
