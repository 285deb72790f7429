// Package reliability holds the fault scenarios of the producer: each test
// runs the producer against a real kinesis-mock behind a fault injector
// (package faultinject), reads the stream back, and checks that no accepted
// record was lost, that duplicates come only from ambiguous failures, that
// every Put got exactly one result, that memory stayed bounded and that the
// producer still works once the fault is gone. The scenarios that make
// duplicates also run with record ids on (producer.Options.RecordIDs): the
// stream, read back as a consumer that de-duplicates by id (package dedupe)
// reads it, then holds every accepted record exactly once. The package has no code of
// its own outside its tests; the README's Reliability section sums the
// scenarios up.
package reliability
