// Package cputime reads the CPU time the process has used, for benchmarks
// and load runs that report CPU per record.
package cputime
