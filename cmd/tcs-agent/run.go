package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"tcs/agent"
	"tcs/config"
	"tcs/httpapi"
	"tcs/ldapdir"
	"tcs/smartset"
	"tcs/tablecache"
)

// run is `tcs-agent run`: serve HTTP, join the swarm until ctx ends, leave
// (hand every set over), then stop serving.
func run(ctx context.Context, cfg *config.Config, logOut io.Writer) error {
	log, err := newLogger(cfg, logOut)
	if err != nil {
		return err
	}
	dir, err := openDir(cfg, log)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := checkCredentials(ctx, dir); err != nil {
		return err
	}
	httpsCfg, err := httpsConfig(cfg.HTTP)
	if err != nil {
		return err
	}
	// The read side: the first answering read replica, else the provider
	// (dir itself without read_urls). Watches, the tables' queries and the
	// status page read there; writes and the lease go to dir.
	reads := dir.Reads()
	defer reads.Close()

	ln, err := net.Listen("tcp", cfg.Service.Listen)
	if err != nil {
		return fmt.Errorf("[service] listen %s: %w", cfg.Service.Listen, err)
	}
	advertise := advertised(cfg.Service.Advertise, ln.Addr())
	if httpsCfg != nil {
		ln = tls.NewListener(ln, httpsCfg)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	tables := tablecache.New(tablecache.Options{
		Directory:       reads,
		RefreshInterval: cfg.Cache.RefreshInterval.Duration,
		RowLimit:        cfg.Cache.RowLimit,
		Logger:          log,
		Registerer:      reg,
	})
	opts := agentOptions(cfg, log)
	opts.Service.Endpoint = advertise
	opts.Metrics = agent.NewMetrics(reg)
	opts.Tables = tables
	opts.Reads = reads
	a, err := agent.New(dir, opts)
	if err != nil {
		ln.Close()
		return err
	}
	page := statusPage(a.Name(), reads, log)
	defer page.Close() // runs after the HTTP server has stopped (bg.Wait below)
	h := cfg.HTTP
	srv := httpapi.New(a, tables, httpapi.Options{
		ReadTimeout:     h.ReadTimeout.Duration,
		WriteTimeout:    h.WriteTimeout.Duration,
		IdleTimeout:     h.IdleTimeout.Duration,
		ShutdownTimeout: h.ShutdownTimeout.Duration,
		MaxHeaderBytes:  h.MaxHeaderBytes,
		RetryAfter:      time.Second,
		Logger:          log,
		Gatherer:        reg,
		Registerer:      reg,
		StatusPage:      page,
		SwarmChanges:    page, // blocking reads of the list
	})

	// The table cache and the HTTP server outlive the agent's leave: while
	// it hands its sets over, requests for them are answered or redirected.
	background, stop := context.WithCancel(context.Background())
	var bg errgroup.Group
	bg.Go(func() error { return tables.Run(background) })
	bg.Go(func() error { return srv.Serve(background, ln) })
	log.WithFields(logrus.Fields{"directory": cfg.Directory.URL, "read_urls": cfg.Directory.ReadURLs, "lease_ttl": cfg.Directory.LeaseTTL.Duration,
		"endpoint": advertise, "listen": ln.Addr().String()}).Info("tcs-agent starting")

	err = a.Run(ctx)
	stop()
	if berr := bg.Wait(); err == nil && berr != nil && !errors.Is(berr, context.Canceled) {
		err = berr
	}
	return err
}

// advertised is the endpoint to publish: the configured one, with the real
// port when the configured listen port was 0.
func advertised(adv string, addr net.Addr) string {
	u, err := url.Parse(adv)
	if err != nil || u.Port() != "0" {
		return adv
	}
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return adv
	}
	u.Host = net.JoinHostPort(u.Hostname(), port)
	return u.String()
}

func agentOptions(cfg *config.Config, log logrus.FieldLogger) agent.Options {
	p := cfg.Placement
	hyst := p.HysteresisKm
	if hyst == 0 {
		hyst = -1 // agent.Options: 0 means default, <0 means zero margin
	}
	return agent.Options{
		Service: smartset.Service{
			Name:     cfg.Service.Name,
			Location: cfg.Service.Location,
			Endpoint: cfg.Service.Advertise,
			Capacity: cfg.Service.Capacity,
		},
		LeaseTTL:          cfg.Directory.LeaseTTL.Duration,
		RenewDeadline:     cfg.Directory.RenewDeadline.Duration,
		ClaimStagger:      p.ClaimStagger.Duration,
		ReconcileInterval: p.ReconcileInterval.Duration,
		MoveInterval:      p.MoveInterval.Duration,
		MoveBudget:        p.MoveBudget,
		HysteresisKm:      hyst,
		SweepInterval:     p.SweepInterval.Duration,
		Poll:              cfg.Directory.Watch == config.WatchPoll,
		PollInterval:      cfg.Directory.PollInterval.Duration,
		Logger:            log,
	}
}

func newLogger(cfg *config.Config, out io.Writer) (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(out)
	lvl, err := logrus.ParseLevel(cfg.Log.Level)
	if err != nil {
		return nil, fmt.Errorf("[log] level: %w", err)
	}
	log.SetLevel(lvl)
	if cfg.Log.Format == config.LogJSON {
		log.SetFormatter(&logrus.JSONFormatter{})
	} else {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "15:04:05.000"})
	}
	return log, nil
}

// checkCredentials binds once before the agent starts, so that refused
// credentials end the process at once with a message that says so (a
// configuration mistake, not a directory to wait for). Anything else,
// such as a directory that is down, is left to the agent, which keeps
// trying.
func checkCredentials(ctx context.Context, dir *ldapdir.Dir) error {
	pctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if err := dir.Ping(pctx); errors.Is(err, ldapdir.ErrCredentials) {
		return fmt.Errorf("%w; check [directory] bind_dn and the password (bind_password_file or %s), or the client certificate",
			err, config.PasswordEnv)
	}
	return nil
}

// httpsConfig is the TLS configuration of the HTTP API, or nil for plain
// HTTP: [http] tls_cert_file and tls_key_file, and with client_ca_file a
// verified client certificate required from every client.
func httpsConfig(h config.HTTP) (*tls.Config, error) {
	if h.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(h.TLSCertFile, h.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("[http] tls_cert_file %s, tls_key_file %s: %w", h.TLSCertFile, h.TLSKeyFile, err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if h.ClientCAFile != "" {
		pool, err := certPool("[http] client_ca_file", h.ClientCAFile)
		if err != nil {
			return nil, err
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

func certPool(key, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificates in it", key, file)
	}
	return pool, nil
}

func openDir(cfg *config.Config, log logrus.FieldLogger) (*ldapdir.Dir, error) {
	d := cfg.Directory
	var tlsCfg *tls.Config
	if d.CAFile != "" || d.InsecureSkipVerify || d.TLSCertFile != "" {
		tlsCfg = &tls.Config{InsecureSkipVerify: d.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // operator's choice, documented as testing only
		if u, err := url.Parse(d.URL); err == nil {
			tlsCfg.ServerName = u.Hostname()
		}
		if d.TLSCertFile != "" {
			cert, err := tls.LoadX509KeyPair(d.TLSCertFile, d.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("[directory] tls_cert_file %s, tls_key_file %s: %w", d.TLSCertFile, d.TLSKeyFile, err)
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
		}
		if d.CAFile != "" {
			pool, err := certPool("[directory] ca_file", d.CAFile)
			if err != nil {
				return nil, err
			}
			tlsCfg.RootCAs = pool
		}
	}
	return ldapdir.Open(ldapdir.Config{
		URL:          d.URL,
		BaseDN:       d.BaseDN,
		BindDN:       d.BindDN,
		BindPassword: cfg.BindPassword(),
		SASLExternal: d.SASLExternal,
		StartTLS:     d.StartTLS,
		TLS:          tlsCfg,
		Timeout:      d.Timeout.Duration,
		Transactions: ldapdir.TxnMode(d.Transactions),
		BatchSize:    d.BatchSize,
		// Lease refreshes, this agent's and others', queue behind the
		// writes in flight: keeping those under TTL/10 leaves a refresh
		// (every TTL/3) most of its time.
		WriteTarget: d.LeaseTTL.Duration / 10,
		ReadURLs:    d.ReadURLs,
		Logger:      log,
	})
}
