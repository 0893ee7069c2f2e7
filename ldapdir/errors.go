package ldapdir

import (
	"errors"
	"fmt"

	"github.com/go-ldap/ldap/v3"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrConflict: a compare-and-swap lost its race (the assertion on the
	// epoch failed, LDAP result 122). Normal: re-read and decide again.
	ErrConflict = errors.New("ldapdir: conflict: the entry changed since it was read")
	// ErrNotFound: the entry does not exist (LDAP result 32).
	ErrNotFound = errors.New("ldapdir: no such entry")
	// ErrExists: an add found the entry already there (LDAP result 68).
	ErrExists = errors.New("ldapdir: entry already exists")
	// ErrUnavailable: the directory could not be reached or the connection
	// broke during the operation. Safe to retry after a re-read.
	ErrUnavailable = errors.New("ldapdir: directory unavailable")
	// ErrLeaseLost: the lease entry is gone (expired or deleted); the agent
	// must stop acting as owner and register again.
	ErrLeaseLost = errors.New("ldapdir: lease lost")
	// ErrNameHeld: another live process holds the agent name (its lease
	// entry); see HeldError.
	ErrNameHeld = errors.New("ldapdir: agent name held by another process")
	// ErrNoSchema: the server does not know the tcs object classes or
	// attributes (schema/tcs.ldif not loaded) or dynamicObject (no dds
	// module).
	ErrNoSchema = errors.New("ldapdir: the directory lacks the tcs schema")
	// ErrNoDDS: the database offers no RFC 2589 dynamic entries (the dds
	// overlay is not configured on it): leases could never expire.
	ErrNoDDS = errors.New("ldapdir: the directory offers no dynamic entries (dds overlay)")
	// ErrClosed: the Dir or Lease was closed.
	ErrClosed = errors.New("ldapdir: closed")
	// ErrNoSyncprov: the server does not offer RFC 4533 content
	// synchronization on the watched base.
	ErrNoSyncprov = errors.New("ldapdir: server has no syncprov")
	// ErrCredentials: the directory refused the bind (LDAP result 49,
	// wrong bind DN or password, or a client certificate it does not map to
	// an account). Retrying with the same credentials does not help; the
	// wrapping message names the bind DN, never the password.
	ErrCredentials = errors.New("ldapdir: the directory refused the credentials (LDAP result 49)")
	// ErrForbidden: the directory's access rules do not allow the operation
	// to the bound identity (LDAP result 50).
	ErrForbidden = errors.New("ldapdir: insufficient access (LDAP result 50)")
	// ErrRowLimit: a Query matched more entries than its row limit; the
	// wrapping message says the limit.
	ErrRowLimit = errors.New("ldapdir: query exceeds the row limit")
)

// translate maps go-ldap errors onto the sentinels, keeping the original
// for the message.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultAssertionFailed):
		sentinel = ErrConflict
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		sentinel = ErrNotFound
	case ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists):
		sentinel = ErrExists
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights):
		sentinel = ErrForbidden
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials):
		sentinel = ErrCredentials
	case isNetwork(err):
		sentinel = ErrUnavailable
	}
	if sentinel == nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w (%v)", op, sentinel, err)
}

// isNetwork reports errors after which the connection is not usable.
func isNetwork(err error) bool {
	return ldap.IsErrorAnyOf(err, ldap.ErrorNetwork, ldap.LDAPResultServerDown,
		ldap.LDAPResultUnavailable, ldap.LDAPResultBusy, ldap.LDAPResultTimeout,
		ldap.LDAPResultConnectError)
}
