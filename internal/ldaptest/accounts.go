package ldaptest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Account is a directory account made by AddAgent or AddOperator.
type Account struct {
	Name         string
	DN           string // cn=<name>,ou=agents,<base> (or ou=operators)
	Password     string
	PasswordFile string // holds Password (mode 0600), for bind_password_file
}

// AddAgent creates the agent account cn=<name>,ou=agents,<base> with a
// fresh random password, the way the README says (scripts/slapd.sh
// add-agent, reading the password from a file). An agent configured with it
// can do what the shipped ACLs allow an agent and nothing more.
func (s *Server) AddAgent(name string) Account {
	s.t.Helper()
	return s.addAccount("add-agent", "agents", name, randomPassword(s.t))
}

// AddAgentWith is AddAgent with a given password: the same account on a
// second server (a location database the agent binds to with the same
// credentials).
func (s *Server) AddAgentWith(name, password string) Account {
	s.t.Helper()
	return s.addAccount("add-agent", "agents", name, password)
}

// AddOperator creates the read-only operator account
// cn=<name>,ou=operators,<base> (scripts/slapd.sh add-operator).
func (s *Server) AddOperator(name string) Account {
	s.t.Helper()
	return s.addAccount("add-operator", "operators", name, randomPassword(s.t))
}

func randomPassword(t testing.TB) string {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	return hex.EncodeToString(raw)
}

func (s *Server) addAccount(cmd, ou, name, password string) Account {
	s.t.Helper()
	a := Account{Name: name, DN: "cn=" + name + ",ou=" + ou + "," + s.BaseDN, Password: password}
	dir := filepath.Join(s.Dir, "accounts")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.t.Fatalf("ldaptest: %v", err)
	}
	a.PasswordFile = filepath.Join(dir, ou+"-"+sanitize(name)+".pw")
	admin := filepath.Join(dir, "admin.pw")
	if err := os.WriteFile(a.PasswordFile, []byte(a.Password+"\n"), 0o600); err != nil {
		s.t.Fatalf("ldaptest: %v", err)
	}
	if err := os.WriteFile(admin, []byte(s.Password), 0o600); err != nil {
		s.t.Fatalf("ldaptest: %v", err)
	}
	c := exec.Command(filepath.Join(s.root, "scripts", "slapd.sh"), cmd, name, a.PasswordFile)
	c.Env = append(os.Environ(), "TCS_LDAP_URL="+s.URL, "TCS_SUFFIX="+s.BaseDN, "TCS_ROOTDN="+s.BindDN, "TCS_ROOTPW_FILE="+admin)
	if out, err := c.CombinedOutput(); err != nil {
		s.t.Fatalf("ldaptest: slapd.sh %s %s: %v\n%s", cmd, name, err, out)
	}
	return a
}
