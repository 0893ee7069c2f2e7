package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"

	"github.com/sirupsen/logrus"

	"tcs/agent"
	"tcs/config"
	"tcs/ldapdir"
	"tcs/smartset"
)

// run is `tcs-agent run`: join the swarm until ctx ends, then leave.
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
	a, err := agent.New(dir, agentOptions(cfg, log))
	if err != nil {
		return err
	}
	log.WithFields(logrus.Fields{"directory": cfg.Directory.URL, "lease_ttl": cfg.Directory.LeaseTTL.Duration,
		"endpoint": cfg.Service.Advertise}).Info("tcs-agent starting")
	return a.Run(ctx)
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

func openDir(cfg *config.Config, log logrus.FieldLogger) (*ldapdir.Dir, error) {
	d := cfg.Directory
	var tlsCfg *tls.Config
	if d.CAFile != "" || d.InsecureSkipVerify {
		tlsCfg = &tls.Config{InsecureSkipVerify: d.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // operator's choice, documented as testing only
		if d.CAFile != "" {
			pem, err := os.ReadFile(d.CAFile)
			if err != nil {
				return nil, fmt.Errorf("[directory] ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("[directory] ca_file %s: no PEM certificates in it", d.CAFile)
			}
			tlsCfg.RootCAs = pool
		}
	}
	return ldapdir.Open(ldapdir.Config{
		URL:          d.URL,
		BaseDN:       d.BaseDN,
		BindDN:       d.BindDN,
		BindPassword: cfg.BindPassword(),
		StartTLS:     d.StartTLS,
		TLS:          tlsCfg,
		Timeout:      d.Timeout.Duration,
		Logger:       log,
	})
}
