package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kplgo/kpl/internal/ctxtime"
	"github.com/kplgo/kpl/internal/kinesisread"
	"github.com/kplgo/kpl/kinesistest/faultinject"
)

// farFuture ends an outage that has no end of its own; the schedule ends it.
const farFuture = 100 * 365 * 24 * time.Hour

// scheduler applies the rules active at each instant to the transport.
type scheduler struct {
	rules  []rule
	tr     *faultinject.Transport
	out    io.Writer
	stream string
	client *kinesis.Client // to the target, for ListShards

	// ranges holds the hash key range of each shard rule in force, by rule
	// index, resolved when the rule started. Only apply uses it, and apply
	// runs on one goroutine at a time.
	ranges map[int]faultinject.HashRange

	mu     sync.Mutex // guards active
	active []bool     // by rule index
}

// newScheduler returns a scheduler for cfg's rules.
func newScheduler(cfg config, tr *faultinject.Transport, out io.Writer) *scheduler {
	client := kinesis.NewFromConfig(aws.Config{
		Region:      cfg.region,
		Credentials: credentials.NewStaticCredentialsProvider("faultproxy", "faultproxy", ""),
	}, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(cfg.target.String()) })
	return &scheduler{rules: cfg.rules, tr: tr, out: out, stream: cfg.stream, client: client,
		ranges: map[int]faultinject.HashRange{}, active: make([]bool, len(cfg.rules))}
}

// activeCount returns the number of rules in force.
func (s *scheduler) activeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.active {
		if a {
			n++
		}
	}
	return n
}

// retryResolve is how often a rule whose shard could not be resolved is
// tried again.
const retryResolve = time.Second

// run applies the schedule's later changes, timed from start, until ctx
// ends; the caller applied the rules of instant 0. While a shard rule could
// not be resolved, the rules in force are applied again every second.
func (s *scheduler) run(ctx context.Context, start time.Time, pending bool) {
	points := changePoints(s.rules)
	for {
		var wait time.Duration
		var at time.Duration
		switch {
		case len(points) > 0:
			at = points[0]
			wait = time.Until(start.Add(at))
			if pending && wait > retryResolve {
				wait, at = retryResolve, -1
			}
		case pending:
			wait, at = retryResolve, -1
		default:
			<-ctx.Done()
			return
		}
		if ctxtime.Sleep(ctx, wait) != nil {
			return
		}
		if at < 0 { // a retry: the instant is now
			pending = s.apply(ctx, time.Since(start).Truncate(time.Millisecond))
			continue
		}
		points = points[1:]
		pending = s.apply(ctx, at)
	}
}

// apply puts the rules active at t after the start in force, then prints
// the changes. It reports whether a shard rule that should be in force could
// not be resolved (it stays off until a later apply resolves it).
func (s *scheduler) apply(ctx context.Context, t time.Duration) (pending bool) {
	var changes []string
	defer func() {
		for _, c := range changes {
			fmt.Fprintln(s.out, c)
		}
	}()
	var entries []faultinject.EntryFault
	var latency, respLatency time.Duration
	outage := false
	for i, r := range s.rules {
		on := r.activeAt(t)
		if r.shard != "" {
			if _, resolved := s.ranges[i]; on && !resolved {
				hr, err := s.shardRange(ctx, r.shard)
				if err != nil {
					changes = append(changes, fmt.Sprintf("faultproxy: at %s: rule %q waits for its shard: %v", t, r.text, err))
					on, pending = false, true
				} else {
					s.ranges[i] = hr
				}
			}
			if !on {
				delete(s.ranges, i)
			}
		}
		s.mu.Lock()
		was := s.active[i]
		s.active[i] = on
		s.mu.Unlock()
		if on != was {
			state := "off"
			if on {
				state = "on"
			}
			changes = append(changes, fmt.Sprintf("faultproxy: at %s: %s: %s", t, state, r.text))
		}
		if kind, ok := requestKinds[r.kind]; ok {
			name := "rule-" + strconv.Itoa(i)
			switch {
			case on && !was:
				if err := s.tr.AddRequestFault(faultinject.RequestFault{Kind: kind, Count: r.count, Probability: prob(r), Operations: r.ops, Name: name}); err != nil {
					fmt.Fprintf(s.out, "faultproxy: rule %q: %v\n", r.text, err)
				}
			case !on && was:
				s.tr.RemoveRequestFaults(name)
			}
			continue
		}
		if !on {
			continue
		}
		switch r.kind {
		case kindThrottle, kindInternalFailure:
			f := faultinject.EntryFault{Code: faultinject.CodeThrottled, Probability: r.prob, PartitionKeys: r.keys}
			if r.kind == kindInternalFailure {
				f.Code = faultinject.CodeInternalFailure
			}
			if r.shard != "" {
				f.HashRanges = []faultinject.HashRange{s.ranges[i]}
			}
			entries = append(entries, f)
		case kindLatency:
			latency += r.delay
		case kindResponseLatency:
			respLatency += r.delay
		case kindOutage:
			outage = true
		}
	}
	if err := s.tr.SetEntryFaults(entries...); err != nil {
		fmt.Fprintf(s.out, "faultproxy: entry faults: %v\n", err)
	}
	s.tr.SetLatency(latency)
	s.tr.SetResponseLatency(respLatency)
	if outage {
		s.tr.OutageUntil(time.Now().Add(farFuture))
	} else {
		s.tr.EndOutage()
	}
	return pending
}

// prob is a request rule's probability: 1 when it has neither count nor p.
func prob(r rule) float64 {
	if r.count == 0 && r.prob == 0 {
		return 1
	}
	return r.prob
}

// shardRange asks the target for the hash key range of a shard of the stream.
func (s *scheduler) shardRange(ctx context.Context, id string) (faultinject.HashRange, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	shards, err := kinesisread.ListAllShards(cctx, s.client, s.stream)
	if err != nil {
		return faultinject.HashRange{}, err
	}
	for _, sh := range shards {
		if aws.ToString(sh.ShardId) == id {
			return faultinject.RangeOf(sh), nil
		}
	}
	return faultinject.HashRange{}, fmt.Errorf("stream %s has no shard %s", s.stream, id)
}
