package main

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kplgo/kpl/kinesistest/faultinject"
)

// ruleKind is what a rule injects.
type ruleKind string

// The rule kinds.
const (
	kindThrottle        ruleKind = "throttle"         // per-entry ProvisionedThroughputExceededException
	kindInternalFailure ruleKind = "internal-failure" // per-entry InternalFailure
	kindHTTP500         ruleKind = "http-500"
	kindHTTP503         ruleKind = "http-503"
	kindResetBefore     ruleKind = "reset-before"
	kindResetAfter      ruleKind = "reset-after"
	kindLatency         ruleKind = "latency"          // before forwarding
	kindResponseLatency ruleKind = "response-latency" // after forwarding
	kindOutage          ruleKind = "outage"
)

// requestKinds maps the whole-request rule kinds to the injector's.
var requestKinds = map[ruleKind]faultinject.RequestFaultKind{
	kindHTTP500:     faultinject.HTTP500,
	kindHTTP503:     faultinject.HTTP503,
	kindResetBefore: faultinject.ResetBeforeForward,
	kindResetAfter:  faultinject.ResetAfterForward,
}

// rule is one line of the schedule: a fault and the window it is active in,
// relative to the proxy's start.
type rule struct {
	text  string // as written
	kind  ruleKind
	from  time.Duration
	to    time.Duration // 0: until the proxy stops
	prob  float64       // 0: every matching entry or request
	count int           // request faults: the next count requests
	delay time.Duration // latency kinds
	shard string        // entry faults: a shard id
	keys  []string      // entry faults: partition keys
	ops   []string      // request faults: operations
}

// entry reports whether the rule fails entries.
func (r rule) entry() bool { return r.kind == kindThrottle || r.kind == kindInternalFailure }

// activeAt reports whether the rule is active at t after the start.
func (r rule) activeAt(t time.Duration) bool {
	return t >= r.from && (r.to == 0 || t < r.to)
}

// window describes when the rule is active.
func (r rule) window() string {
	switch {
	case r.from == 0 && r.to == 0:
		return "for the whole run"
	case r.to == 0:
		return "from " + r.from.String()
	default:
		return "from " + r.from.String() + " to " + r.to.String()
	}
}

// parseRule parses one rule: a kind followed by key=value settings, for
// example "throttle shard=2 from=10s to=20s p=0.5".
func parseRule(line string) (rule, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return rule{}, fmt.Errorf("empty rule")
	}
	r := rule{text: strings.Join(fields, " "), kind: ruleKind(fields[0])}
	_, isRequest := requestKinds[r.kind]
	switch {
	case r.entry(), isRequest, r.kind == kindLatency, r.kind == kindResponseLatency, r.kind == kindOutage:
	default:
		return rule{}, fmt.Errorf("rule %q: unknown kind %q (want throttle, internal-failure, http-500, http-503, reset-before, reset-after, latency, response-latency or outage)", line, fields[0])
	}
	allowed := map[string]bool{"from": true, "to": true}
	switch {
	case r.entry():
		allowed["p"], allowed["shard"], allowed["key"] = true, true, true
	case isRequest:
		allowed["p"], allowed["count"], allowed["op"] = true, true, true
	case r.kind == kindOutage:
	default:
		allowed["d"] = true
	}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return rule{}, fmt.Errorf("rule %q: %q is not key=value", line, f)
		}
		if !allowed[k] {
			return rule{}, fmt.Errorf("rule %q: %s does not take %s=", line, r.kind, k)
		}
		var err error
		switch k {
		case "from":
			r.from, err = time.ParseDuration(v)
		case "to":
			r.to, err = time.ParseDuration(v)
		case "d":
			r.delay, err = time.ParseDuration(v)
		case "p":
			r.prob, err = strconv.ParseFloat(v, 64)
			if err == nil && (r.prob <= 0 || r.prob > 1) {
				err = fmt.Errorf("not in (0, 1]")
			}
		case "count":
			r.count, err = strconv.Atoi(v)
			if err == nil && r.count <= 0 {
				err = fmt.Errorf("not positive")
			}
		case "shard":
			r.shard, err = shardID(v)
		case "key":
			r.keys = append(r.keys, strings.Split(v, ",")...)
		case "op":
			r.ops = append(r.ops, strings.Split(v, ",")...)
		}
		if err != nil {
			return rule{}, fmt.Errorf("rule %q: %s: %v", line, k, err)
		}
	}
	if r.from < 0 || r.to < 0 || (r.to != 0 && r.to <= r.from) {
		return rule{}, fmt.Errorf("rule %q: the window must have 0 <= from < to", line)
	}
	if (r.kind == kindLatency || r.kind == kindResponseLatency) && r.delay <= 0 {
		return rule{}, fmt.Errorf("rule %q: %s needs d=<duration>", line, r.kind)
	}
	if isRequest && r.count > 0 && r.prob > 0 {
		return rule{}, fmt.Errorf("rule %q: give count= or p=, not both", line)
	}
	return r, nil
}

// shardID accepts a shard number ("2") or a shard id ("shardId-000000000002").
func shardID(v string) (string, error) {
	if strings.HasPrefix(v, "shardId-") {
		return v, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return "", fmt.Errorf("%q is neither a shard number nor a shard id", v)
	}
	return fmt.Sprintf("shardId-%012d", n), nil
}

// parseRules reads rules one per line; blank lines and lines starting with
// # are skipped.
func parseRules(in io.Reader) ([]rule, error) {
	var rules []rule
	sc := bufio.NewScanner(in)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := parseRule(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		rules = append(rules, r)
	}
	return rules, sc.Err()
}

// changePoints returns the instants after the start at which the set of
// active rules changes, in order, without 0.
func changePoints(rules []rule) []time.Duration {
	var ts []time.Duration
	for _, r := range rules {
		if r.from > 0 {
			ts = append(ts, r.from)
		}
		if r.to > 0 {
			ts = append(ts, r.to)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return slices.Compact(ts)
}
