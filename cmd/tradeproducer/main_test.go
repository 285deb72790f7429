package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/kplgo/kpl/aggregation"
	"github.com/kplgo/kpl/internal/cli"
	"github.com/kplgo/kpl/internal/pipeline"
	"github.com/kplgo/kpl/spool"
)

// TestASignalDuringSpoolRecoveryIsNoMisconfiguration: a SIGTERM while a
// restart recovers its spool ends Open with the context's error, which the
// command takes as the signal (exit 0), not as a directory it cannot use
// (a ConfigError, exit 2).
func TestASignalDuringSpoolRecoveryIsNoMisconfiguration(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	dir := t.TempDir()
	sp, err := spool.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.AppendBatch(context.Background(), []aggregation.Record{{PartitionKey: "AAPL", Data: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the signal
	_, err = openSpool(ctx, pipeline.Config{SpoolDir: dir, SpoolMaxBytes: 1 << 30}, log)
	var ce *pipeline.ConfigError
	if !errors.Is(err, context.Canceled) || errors.As(err, &ce) {
		t.Errorf("openSpool after the signal = %v, want the context's error and no ConfigError", err)
	}
	// Without the signal the same directory opens, its record recovered.
	sp, err = openSpool(context.Background(), pipeline.Config{SpoolDir: dir, SpoolMaxBytes: 1 << 30}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if n := sp.Stats().Recovered; n != 1 {
		t.Errorf("recovered %d records, want 1", n)
	}
}

func TestAStartUpStepCutShortByASignalExitsZero(t *testing.T) {
	var stderr strings.Builder
	ctx, cancel := context.WithCancel(context.Background())
	if code := startFailed(ctx, &stderr, errors.New("no credentials")); code != cli.ExitUsage || !strings.Contains(stderr.String(), "no credentials") {
		t.Errorf("without a signal: exit %d, stderr %q; want the usage exit and the error", code, stderr.String())
	}
	cancel()
	stderr.Reset()
	if code := startFailed(ctx, &stderr, context.Canceled); code != cli.ExitOK || stderr.Len() != 0 {
		t.Errorf("after a signal: exit %d, stderr %q; want 0 and nothing", code, stderr.String())
	}
}
